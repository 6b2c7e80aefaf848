"""Tasks of the ``image`` collection: thin wrappers over hgi_spark."""

from invoke import Collection, task

from taskhelpers import handled

NAME_HELP = "the image as NAME/VERSION (default: $HGI_IMAGE, set by invoke.sh)"


@task(help={"name": NAME_HELP})
@handled
def validate(c, name=None):
    """Check the image definition (image.yml over its defaults)."""
    from hgi_spark import config

    config.load_image(name)


namespace = Collection(validate)
