"""Machine images: build with packer (the only place that runs it), share and accept in Glance,
the install script's inputs."""
