"""Tasks of the ``deployment`` collection: thin wrappers over hgi_spark."""

from invoke import Collection, task

from taskhelpers import handled

NAME_HELP = "the deployment as NAME/OWNER (default: $HGI_DEPLOYMENT, set by invoke.sh)"


@task(help={"name": NAME_HELP})
@handled
def validate(c, name=None):
    """Check the deployment's YAML against its schema and the root module's variables.tf."""
    from hgi_spark import config

    config.load_deployment(name).render_check()


namespace = Collection(validate)
