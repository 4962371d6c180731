"""The controller runtime shared by every Skiff component that reconciles objects
(controller-runtime / sample-controller): shared informers, work queue workers around a
level-triggered ``reconcile(key)``, owners and expectations, finalizers, and an in-memory
fake API for unit tests.

* ``controller``: :class:`~skiff.controller.controller.Controller`, ``TerminalError``,
  ``ControllerContext``.
* ``informers``: ``SharedInformers``.
* ``owners``: controller references, ``ControllerRefManager``, ``OwnedPodEvents``,
  ``SelectorCache``, owner indexes.
* ``expectations``: ``Expectations``.
* ``podcontrol``: ``PodControl`` (creating pods from templates and deleting them, with
  their events, under expectations), ``pod_from_template``.
* ``workload``: ``WorkloadController`` (owners, their dependents' informers, selectors,
  claiming), ``PodOwnerController`` (the controllers whose pods carry their reference).
* ``finalizers``: adding and removing finalizers safely.
* ``batch``: ``slow_start_batch``.
* ``fake``: ``FakeApi``, an in-memory API server for unit tests.
"""
