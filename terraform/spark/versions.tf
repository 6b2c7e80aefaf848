terraform {
  # terraform >= 1.6 (and OpenTofu >= 1.6): optional() defaults, terraform test for the nested
  # provider-free modules, and the functions used here (startswith, strcontains).
  required_version = ">= 1.6.0"

  required_providers {
    openstack = {
      # Version 3 dropped the Nova floating-IP and security-group resources; this module uses
      # only the Neutron ones. The same source address resolves on the OpenTofu registry.
      source  = "terraform-provider-openstack/openstack"
      version = ">= 3.0.0, < 4.0.0"
    }
  }
}

# Credentials and region come from the OS_* environment (or OS_CLOUD) that the wrapper loads
# from openrc.sh; nothing about the cloud is written here.
provider "openstack" {}
