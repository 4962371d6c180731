"""The kubelet's device manager: device plugins (v1beta1) registered over gRPC, their
devices as the Node's extended resources, allocation at pod admission, a checkpoint."""

from .allocation import AdmissionError, NotReady
from .endpoint import PluginError
from .manager import DeviceManager, RegistrationError

__all__ = ["AdmissionError", "DeviceManager", "NotReady", "PluginError", "RegistrationError"]
