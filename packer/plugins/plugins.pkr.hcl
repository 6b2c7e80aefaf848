# Plugins for packer >= 1.7, where the openstack builder is no longer built in. Packer 1.6.6 rejects
# a required_plugins block, so it lives in this subfolder, which `packer validate/build packer/`
# never reads; the wrapper (invoke/hgi_spark/packer.py) runs `packer init packer/plugins/` only
# when the installed packer has `init`.
packer {
  required_version = ">= 1.7.0"
  required_plugins {
    openstack = {
      version = ">= 1.1.2"
      source  = "github.com/hashicorp/openstack"
    }
  }
}
