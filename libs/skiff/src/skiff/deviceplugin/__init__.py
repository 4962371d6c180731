"""The device plugin API (v1beta1) on both sides: the generated messages and services
(``v1beta1.api_pb2``), :mod:`.server` for a plugin's side (serve, register, register
again after a kubelet restart), and :mod:`.sample`, a plugin of fake devices backed by
files, as Kubernetes' sample device plugin."""

DEVICE_PLUGIN_DIR = "device-plugins"
"""The directory under the kubelet's root where the kubelet's and plugins' sockets live."""
KUBELET_SOCKET = "kubelet.sock"
VERSION = "v1beta1"
