# A var file as invoke/hgi_spark/packer.py writes it for images/hail-base/1.0.0/image.yml (with
# images/hail-base/defaults.yml below it). Checked by tests/packer/test_template.py against the
# template's variables; the wrapper writes the real one beside the deployment, never here.
image_name    = "hail-base-1.0.0"
image_version = "1.0.0"
software = {
  java       = "17"
  python     = "3.11"
  hail       = "0.2.139"
  pyspark    = "3.5.9"
  jupyterlab = "4.5.11"
}
git_commit               = "0123456789abcdef0123456789abcdef01234567"
image_visibility         = "shared"
image_tags               = []
image_properties         = {}
source_image_name        = "debian-12-genericcloud-amd64"
source_image_filter      = {}
source_image_filter_tags = []
flavor                   = "m1.medium"
networks                 = []
floating_ip_network      = ""
security_groups          = []
ssh_username             = "debian"
disk_gb                  = 20
use_blockstorage_volume  = false
install_env_file         = "install.env"
constraints_file         = "../images/hail-base/1.0.0/constraints.txt"
node_scripts_dir         = ""
