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


@task(help={"name": NAME_HELP, "force": "build and replace the image even if Glance has it already"})
@handled
def build(c, name=None, force=False):
    """Build the image with packer, unless this project already has it in Glance."""
    from hgi_spark import config, credentials, images

    image = config.load_image(name)
    result = images.build(image, credentials.openstack_environment(), force=force)
    print(f"{result.image.name} {result.image.id} {'built' if result.built else 'already present'}")


@task(
    help={
        "name": NAME_HELP,
        "with": "projects to share with, comma-separated names or IDs (names: see invoke/README.md)",
    }
)
@handled
def share(c, name=None, with_=""):
    """Share this project's image with other projects (they then run accept)."""
    from hgi_spark import config, credentials, images

    image = config.load_image(name)
    result = images.share(image, credentials.openstack_environment(), images.parse_projects(with_))
    for member in result.members:
        print(f"{result.image.name} {member.project} {member.project_id} {member.status}")


@task(help={"name": NAME_HELP})
@handled
def accept(c, name=None):
    """Accept the image another project shared with this one (run with this project's credentials)."""
    from hgi_spark import config, credentials, images

    image = config.load_image(name)
    for accepted in images.accept(image, credentials.openstack_environment()):
        print(f"{accepted.image.name} {accepted.image.id} accepted")


@task(help={"name": NAME_HELP, "json": "print the status as JSON"})
@handled
def status(c, name=None, json=False):
    """Is the image in Glance here or shared with this project: its versions and its members."""
    from hgi_spark import config, credentials, images

    image = config.load_image(name)
    report = images.status(image, credentials.openstack_environment())
    print(images.format_status(report, as_json=json))


namespace = Collection(validate, build, share, accept, status)
