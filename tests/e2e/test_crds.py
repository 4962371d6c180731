"""CustomResourceDefinitions with the real kubectl (1.32) and the official Python client,
against a real apiserver on etcd and NATS: a CRD is established and its resource served
(discovery, short names, categories, printer columns, status and scale subresources,
watch, patch types, server-side apply), objects are checked against the schema, and
deleting the CRD deletes its objects."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from cmenv import Managers
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException
from test_kubectl import kubectl

from cluster import Cluster, wait_until

GROUP = "stable.example.com"
CRD = f"""\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.{GROUP}
spec:
  group: {GROUP}
  scope: Namespaced
  names:
    plural: crontabs
    singular: crontab
    kind: CronTab
    shortNames: [ct]
    categories: [all]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {{}}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
        labelSelectorPath: .status.selector
    additionalPrinterColumns:
    - name: Spec
      type: string
      jsonPath: .spec.cronSpec
    - name: Replicas
      type: integer
      jsonPath: .spec.replicas
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [cronSpec]
            x-kubernetes-validations:
            - rule: "self.image != 'forbidden'"
              message: the image "forbidden" is not allowed
            - rule: "self.cronSpec == oldSelf.cronSpec || self.replicas > 0"
              message: a paused CronTab keeps its schedule
            properties:
              cronSpec:
                type: string
                pattern: '^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){{4}}$'
              image:
                type: string
                default: busybox
              replicas:
                type: integer
                minimum: 0
                maximum: 10
                default: 1
          status:
            type: object
            properties:
              replicas: {{type: integer}}
              selector: {{type: string}}
"""

CRONTAB = """\
apiVersion: stable.example.com/v1
kind: CronTab
metadata:
  name: {name}
  namespace: crd-test
spec:
  cronSpec: "{spec}"
"""


@pytest.fixture(scope="module")
def crd(kubeconfig: Path) -> str:
    kubectl(kubeconfig, "create", "namespace", "crd-test")
    kubectl(kubeconfig, "apply", "-f", "-", input=CRD)
    kubectl(
        kubeconfig,
        "wait",
        "--for=condition=Established",
        f"crd/crontabs.{GROUP}",
        "--timeout=30s",
    )
    return "crontabs"


def test_kubectl_discovers_and_prints_the_custom_resource(kubeconfig: Path, crd: str) -> None:
    resources = kubectl(kubeconfig, "api-resources", "--api-group", GROUP).stdout
    assert resources.split("\n")[1].split() == [
        "crontabs",
        "ct",
        "stable.example.com/v1",
        "true",
        "CronTab",
    ]
    kubectl(
        kubeconfig, "apply", "-f", "-", input=CRONTAB.format(name="every-five", spec="*/5 * * * *")
    )
    table = kubectl(kubeconfig, "get", "ct", "-n", "crd-test").stdout.splitlines()
    assert table[0].split() == ["NAME", "SPEC", "REPLICAS", "AGE"]
    assert table[1].split()[:5] == ["every-five", "*/5", "*", "*", "*"]
    assert table[1].split()[6] == "1"
    every = kubectl(kubeconfig, "get", "all", "-n", "crd-test", "-o", "name").stdout
    assert "crontab.stable.example.com/every-five" in every
    obj = json.loads(
        kubectl(kubeconfig, "get", "crontab", "every-five", "-n", "crd-test", "-o", "json").stdout
    )
    assert obj["spec"] == {"cronSpec": "*/5 * * * *", "image": "busybox", "replicas": 1}
    crd_obj = json.loads(
        kubectl(kubeconfig, "get", "crd", f"crontabs.{GROUP}", "-o", "json").stdout
    )
    assert crd_obj["status"]["acceptedNames"]["kind"] == "CronTab"
    assert crd_obj["status"]["storedVersions"] == ["v1"]
    # kubectl explain reads the CRD's schema from /openapi/v3.
    explained = kubectl(kubeconfig, "explain", "crontabs.spec").stdout
    assert "GROUP:      stable.example.com\nKIND:       CronTab\nVERSION:    v1" in explained
    assert "cronSpec\t<string> -required-" in explained


def test_schema_violations_are_refused_with_field_paths(kubeconfig: Path, crd: str) -> None:
    out = kubectl(
        kubeconfig,
        "apply",
        "-f",
        "-",
        input=CRONTAB.format(name="bad", spec="whenever"),
        check=False,
    )
    assert out.returncode != 0
    assert 'The CronTab "bad" is invalid: spec.cronSpec: Invalid value: "whenever": ' in out.stderr
    forbidden = CRONTAB.format(name="cel", spec="* * * * *") + "  image: forbidden\n"
    out = kubectl(kubeconfig, "apply", "-f", "-", input=forbidden, check=False)
    assert out.returncode != 0
    assert (
        'The CronTab "cel" is invalid: spec: Invalid value: "object": '
        'the image "forbidden" is not allowed'
    ) in out.stderr
    paused = CRONTAB.format(name="paused", spec="* * * * *") + "  replicas: 0\n"
    kubectl(kubeconfig, "apply", "-f", "-", input=paused)
    moved = paused.replace('"* * * * *"', '"0 * * * *"')
    out = kubectl(kubeconfig, "apply", "-f", "-", input=moved, check=False)
    assert out.returncode != 0
    assert "a paused CronTab keeps its schedule" in out.stderr
    unknown = CRONTAB.format(name="unknown", spec="* * * * *") + "  color: blue\n"
    out = kubectl(kubeconfig, "apply", "-f", "-", input=unknown, check=False)
    assert out.returncode != 0
    assert 'unknown field "spec.color"' in out.stderr


def test_kubectl_scale_patch_and_server_side_apply(kubeconfig: Path, crd: str) -> None:
    kubectl(kubeconfig, "apply", "-f", "-", input=CRONTAB.format(name="scaled", spec="* * * * *"))
    kubectl(kubeconfig, "scale", "crontab/scaled", "-n", "crd-test", "--replicas=4")
    got = kubectl(
        kubeconfig, "get", "crontab", "scaled", "-n", "crd-test", "-o", "jsonpath={.spec.replicas}"
    )
    assert got.stdout == "4"
    kubectl(
        kubeconfig,
        "patch",
        "crontab",
        "scaled",
        "-n",
        "crd-test",
        "--type=merge",
        "-p",
        '{"spec":{"image":"nginx"}}',
    )
    out = kubectl(
        kubeconfig,
        "patch",
        "crontab",
        "scaled",
        "-n",
        "crd-test",
        "-p",
        '{"spec":{"image":"x"}}',
        check=False,
    )
    assert out.returncode != 0
    assert "the body of the request was in an unknown format" in out.stderr
    applied = CRONTAB.format(name="scaled", spec="0 * * * *")
    kubectl(
        kubeconfig,
        "apply",
        "--server-side",
        "--field-manager=ops",
        "--force-conflicts",
        "-f",
        "-",
        input=applied,
    )
    obj = json.loads(
        kubectl(
            kubeconfig,
            "get",
            "crontab",
            "scaled",
            "-n",
            "crd-test",
            "-o",
            "json",
            "--show-managed-fields",
        ).stdout
    )
    assert obj["spec"]["cronSpec"] == "0 * * * *"
    assert obj["spec"]["image"] == "nginx"
    assert "ops" in {m["manager"] for m in obj["metadata"]["managedFields"]}


def test_deleting_a_namespace_deletes_its_custom_objects(
    cluster: Cluster, kubeconfig: Path, crd: str
) -> None:
    """The namespace controller finds custom resources by discovery."""
    managers = Managers(cluster)
    managers.start("--controllers=namespace")
    try:
        kubectl(kubeconfig, "create", "namespace", "crd-doomed")
        doomed = CRONTAB.format(name="doomed", spec="* * * * *").replace("crd-test", "crd-doomed")
        kubectl(kubeconfig, "apply", "-f", "-", input=doomed)
        kubectl(kubeconfig, "delete", "namespace", "crd-doomed", "--wait=false")

        def gone() -> bool:
            out = kubectl(kubeconfig, "get", "namespace", "crd-doomed", check=False)
            return out.returncode != 0 and "NotFound" in out.stderr

        wait_until(gone, timeout=60, what="namespace crd-doomed deleted")
        cr = kubectl(kubeconfig, "get", "crontab", "doomed", "-n", "crd-doomed", check=False)
        assert "NotFound" in cr.stderr
    finally:
        managers.stop()


def test_official_client_status_watch_and_crd_deletion(kubeconfig: Path, crd: str) -> None:
    config.load_kube_config(str(kubeconfig))
    api = client.CustomObjectsApi()
    body = {
        "apiVersion": f"{GROUP}/v1",
        "kind": "CronTab",
        "metadata": {"name": "py"},
        "spec": {"cronSpec": "* * * * *", "replicas": 2},
    }
    created = api.create_namespaced_custom_object(GROUP, "v1", "crd-test", "crontabs", body)
    rv = created["metadata"]["resourceVersion"]
    api.patch_namespaced_custom_object_status(
        GROUP, "v1", "crd-test", "crontabs", "py", {"status": {"replicas": 2, "selector": "app=py"}}
    )
    w = watch.Watch()
    seen = []
    for event in w.stream(
        api.list_namespaced_custom_object,
        GROUP,
        "v1",
        "crd-test",
        "crontabs",
        resource_version=rv,
        timeout_seconds=5,
    ):
        seen.append((event["type"], event["object"].get("status")))
        w.stop()
    assert seen == [("MODIFIED", {"replicas": 2, "selector": "app=py"})]
    scale = api.get_namespaced_custom_object_scale(GROUP, "v1", "crd-test", "crontabs", "py")
    assert scale["spec"]["replicas"] == 2 and scale["status"]["selector"] == "app=py"
    with pytest.raises(ApiException) as e:
        api.create_namespaced_custom_object(
            GROUP,
            "v1",
            "crd-test",
            "crontabs",
            {**body, "spec": {"cronSpec": "* * * * *", "replicas": 99}},
        )
    assert e.value.status == 422
    assert (
        "spec.replicas: Invalid value: 99: spec.replicas in body should be less than or equal to 10"
        in e.value.body
    )

    ext = client.ApiextensionsV1Api()
    ext.delete_custom_resource_definition(f"crontabs.{GROUP}")
    deadline = time.monotonic() + 30
    while True:
        try:
            ext.read_custom_resource_definition(f"crontabs.{GROUP}")
        except ApiException as gone:
            assert gone.status == 404
            break
        assert time.monotonic() < deadline, "the CRD was not finalized"
        time.sleep(0.2)
    # Discovery no longer lists it (api-resources reads discovery afresh).
    resources = kubectl(kubeconfig, "api-resources", "--api-group", GROUP).stdout
    assert "crontabs" not in resources
    with pytest.raises(ApiException) as e:
        api.list_namespaced_custom_object(GROUP, "v1", "crd-test", "crontabs")
    assert e.value.status == 404
    assert json.loads(e.value.body)["message"] == (
        "the server could not find the requested resource (crontabs)"
    )


WIDGETS = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: widgets.conv.example.com}}
spec:
  group: conv.example.com
  scope: Namespaced
  names: {{plural: widgets, kind: Widget}}
  conversion:
    strategy: Webhook
    webhook:
      conversionReviewVersions: [v1]
      clientConfig: {{url: "{url}", caBundle: {ca}}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {{type: object, properties: {{size: {{type: string}}}}}}
  - name: v2
    served: true
    storage: false
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size:
                type: object
                properties: {{value: {{type: integer}}, unit: {{type: string}}}}
"""


def _convert_widget(path: str, review: dict) -> dict:
    """v1 ``size: "10cm"`` ↔ v2 ``size: {value: 10, unit: cm}``."""
    req = review["request"]
    out = []
    for obj in req["objects"]:
        obj = {**obj, "apiVersion": req["desiredAPIVersion"]}
        size = (obj.get("spec") or {}).get("size")
        if req["desiredAPIVersion"].endswith("/v2") and isinstance(size, str):
            digits = "".join(c for c in size if c.isdigit())
            obj["spec"] = {"size": {"value": int(digits), "unit": size[len(digits) :]}}
        elif req["desiredAPIVersion"].endswith("/v1") and isinstance(size, dict):
            obj["spec"] = {"size": f"{size['value']}{size['unit']}"}
        out.append(obj)
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
            "response": {"uid": req["uid"], "convertedObjects": out,
                         "result": {"status": "Success"}}}  # fmt: skip


def test_a_conversion_webhook_serves_a_crd_in_two_versions(kubeconfig: Path) -> None:
    """The CRD's webhook (HTTPS on loopback, its CA in ``caBundle``) converts what kubectl
    and the official client read and write: a v1 object read as v2 (kubectl's preferred
    version), a v2 write stored as v1, a v2 watch."""
    import sys

    sys.path.insert(0, str(Path(__file__).parents[2] / "services" / "apiserver" / "tests"))
    from threaded import serve_in_thread
    from webhookserver import WebhookServer

    serving = serve_in_thread(WebhookServer(_convert_widget))
    server = next(serving)
    try:
        crd = WIDGETS.format(url=server.url("/convert"), ca=server.ca_bundle)
        kubectl(kubeconfig, "apply", "-f", "-", input=crd)
        kubectl(kubeconfig, "wait", "--for=condition=Established",
                "crd/widgets.conv.example.com", "--timeout=30s")  # fmt: skip
        kubectl(kubeconfig, "create", "namespace", "conv")
        kubectl(kubeconfig, "-n", "conv", "apply", "-f", "-", input=(
            "apiVersion: conv.example.com/v1\nkind: Widget\nmetadata: {name: w}\n"
            "spec: {size: 10cm}\n"))  # fmt: skip
        got = json.loads(kubectl(kubeconfig, "-n", "conv", "get", "widgets", "w", "-o",
                                 "json").stdout)  # fmt: skip
        assert got["apiVersion"] == "conv.example.com/v2"
        assert got["spec"] == {"size": {"value": 10, "unit": "cm"}}
        api = client.CustomObjectsApi(config.new_client_from_config(str(kubeconfig)))
        events = watch.Watch().stream(api.list_namespaced_custom_object, "conv.example.com",
                                      "v2", "conv", "widgets", timeout_seconds=10)  # fmt: skip
        first = next(events)
        assert first["object"]["spec"]["size"]["unit"] == "cm"
        patch = {"spec": {"size": {"value": 12, "unit": "mm"}}}
        api.patch_namespaced_custom_object("conv.example.com", "v2", "conv", "widgets", "w", patch)
        second = next(events)
        assert second["type"] == "MODIFIED"
        assert second["object"]["spec"]["size"] == {"value": 12, "unit": "mm"}
        v1 = api.get_namespaced_custom_object("conv.example.com", "v1", "conv", "widgets", "w")
        assert v1["spec"] == {"size": "12mm"}
        paths = {p for p, _ in server.calls}
        assert paths == {"/convert?timeout=30s"}
        kubectl(kubeconfig, "delete", "crd", "widgets.conv.example.com")
        kubectl(kubeconfig, "delete", "namespace", "conv", "--wait=false")
    finally:
        serving.close()
