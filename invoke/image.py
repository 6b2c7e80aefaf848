"""Tasks of the ``image`` collection: each reads its options, makes one library call, prints."""

from invoke import Collection, task

from taskhelpers import handled, image_name

NAME_HELP = "the image as NAME/VERSION (default: $HGI_IMAGE, set by invoke.sh)"
TARGET_HELP = "where the image goes: openstack (Glance, the default) or qemu (the local image cache)"


@task(help={"name": NAME_HELP})
@handled
def validate(c, name=None):
    """Check the image definition (image.yml over its defaults)."""
    from hgi_spark.core import config

    image = config.load_image(image_name(name))
    print(f"valid: {image.ref}")


@task(
    help={
        "name": NAME_HELP,
        "force": "build and replace the image even if the target has it already",
        "target": TARGET_HELP,
    }
)
@handled
def build(c, name=None, force=False, target="openstack"):
    """Build the image with packer, unless the target already has it for the same inputs."""
    from hgi_spark.images import operations

    print(operations.build_named(image_name(name), target=target, force=force).line())


@task(
    help={
        "name": NAME_HELP,
        "with": "projects to share with, comma-separated names or IDs (names: see invoke/README.md)",
    }
)
@handled
def share(c, name=None, with_=""):
    """Share this project's image with other projects (they then run accept)."""
    from hgi_spark.core.errors import UsageError
    from hgi_spark.images import operations

    projects = list(dict.fromkeys(p.strip() for p in with_.split(",") if p.strip()))
    if not projects:
        raise UsageError("no project to share with", fix="pass --with PROJECT[,PROJECT...] (names or IDs)")
    for line in operations.share_named(image_name(name), projects):
        print(line)


@task(help={"name": NAME_HELP})
@handled
def accept(c, name=None):
    """Accept the image another project shared with this one (run with this project's credentials)."""
    from hgi_spark.images import operations

    for line in operations.accept_named(image_name(name)):
        print(line)


@task(help={"name": NAME_HELP, "json": "print the status as JSON"})
@handled
def status(c, name=None, json=False):
    """Where the image is: Glance here or shared with this project, and the local image cache."""
    from hgi_spark.images import operations

    print(operations.status_named(image_name(name), as_json=json))


namespace = Collection(validate, build, share, accept, status)
