"""skiff-nvidia-device-plugin: NVIDIA GPUs found through NVML advertised to the kubelet
as ``nvidia.com/gpu`` (or shared, or as MIG devices), with XID-driven health, the driver's
device nodes and user-space files handed to containers, and node labels of what was
found. NVML is behind :class:`.nvml.Nvml`, filled by ``pynvml`` on a GPU machine and by
:class:`.fake.FakeNvml` in tests."""
