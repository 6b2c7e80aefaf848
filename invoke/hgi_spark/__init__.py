"""Library behind the invoke tasks: configuration, rendering, terraform/packer runners, OpenStack calls.

It never imports invoke, so every function can be tested and reused without it.
"""
