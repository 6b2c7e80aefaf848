"""The connection to OpenStack: built from an explicit OS_* mapping, checked once, errors made readable.

With glance.py and project.py, the only modules importing openstacksdk. The environment is passed in (from
``credentials.openstack_environment()``) rather than read from ``os.environ``, so a task, a test or
a pre-flight check can hold two connections (two projects) at once without touching global state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keystoneauth1.exceptions as ksa
import openstack
import openstack.config
import openstack.connection
import openstack.exceptions

from hgi_spark.cloud import credentials
from hgi_spark.core.errors import CloudError, CredentialsError, NotFoundError, first_line

# Selectors of a clouds.yaml entry, not connection arguments.
_NOT_ARGUMENTS = {"OS_CLOUD", "OS_CLIENT_CONFIG_FILE", "OS_CLIENT_SECURE_FILE", "OS_CLOUD_NAME"}
_FIX_OPENRC = "source your openrc file again, or check OS_CLOUD's clouds.yaml entry"


def _arguments(env: Mapping[str, str]) -> dict[str, Any]:
    """OS_FOO_BAR=value -> foo_bar=value, as openstacksdk reads the environment itself."""
    return {
        key[3:].lower(): value
        for key, value in env.items()
        if key.startswith("OS_") and key not in _NOT_ARGUMENTS and value != ""
    }


def describe(env: Mapping[str, str]) -> str:
    """Who we are, for messages: ``user alice in project hgi`` or ``cloud mycloud``."""
    if env.get("OS_CLOUD"):
        return f"cloud {env['OS_CLOUD']} (clouds.yaml)"
    user = env.get("OS_USERNAME") or env.get("OS_USER_ID") or env.get("OS_APPLICATION_CREDENTIAL_NAME") or "?"
    project = env.get("OS_PROJECT_NAME") or env.get("OS_PROJECT_ID") or env.get("OS_TENANT_NAME") or "?"
    return f"user {user} in project {project}"


def connect(env: Mapping[str, str], *, check: bool = True) -> openstack.connection.Connection:
    """A connection for ``env`` (OS_* variables, or OS_CLOUD), authenticated now when ``check``.

    Raises CredentialsError for missing variables, a wrong password, an unknown project or an
    expired token, and CloudError when Keystone cannot be reached.
    """
    if not env.get("OS_CLOUD"):
        missing = credentials.missing_variables(env)
        if missing:
            raise CredentialsError(f"OpenStack credentials incomplete: {', '.join(missing)} not set", fix=_FIX_OPENRC)
    try:
        files = [env[k] for k in ("OS_CLIENT_CONFIG_FILE",) if env.get(k)]
        config = openstack.config.OpenStackConfig(
            load_envvars=False,
            load_yaml_config=bool(env.get("OS_CLOUD")),
            config_files=files or None,
            secure_files=[env["OS_CLIENT_SECURE_FILE"]] if env.get("OS_CLIENT_SECURE_FILE") else None,
        )
        region = config.get_one(cloud=env.get("OS_CLOUD") or None, **_arguments(env))
    except (openstack.exceptions.ConfigException, ksa.ClientException) as error:
        raise CredentialsError(f"OpenStack configuration rejected: {first_line(error)}", fix=_FIX_OPENRC) from None
    connection = openstack.connection.Connection(config=region)
    if check:
        authenticate(connection, env)
    return connection


def authenticate(connection: openstack.connection.Connection, env: Mapping[str, str]) -> None:
    """Get a token now, so that bad credentials fail before anything else happens."""
    try:
        connection.session.get_token()
    except ksa.Unauthorized:
        raise _rejected(connection, env) from None
    except ksa.NotFound as error:
        # Keystone answers 404 "Could not recognize Fernet token" for a revoked or foreign token.
        if "token" in _auth_type(connection):
            raise _rejected(connection, env) from None
        url = connection.config.get_auth_args().get("auth_url", "?")
        raise CloudError(
            f"Keystone at {url} answered 404: {first_line(error)}",
            fix="OS_AUTH_URL is the identity endpoint, usually ending in /v3",
        ) from None
    except ksa.ConnectFailure as error:
        url = connection.config.get_auth_args().get("auth_url", "?")
        raise CloudError(
            f"cannot reach Keystone at {url}: {first_line(error)}",
            fix="check OS_AUTH_URL and your network (VPN?)",
        ) from None
    except ksa.MissingRequiredOptions as error:
        names = ", ".join(f"OS_{o.dest.upper()}" for o in error.options)
        raise CredentialsError(f"OpenStack credentials incomplete: {names} not set", fix=_FIX_OPENRC) from None
    except ksa.ClientException as error:
        raise CredentialsError(
            f"authentication failed for {describe(env)}: {first_line(error)}", fix=_FIX_OPENRC
        ) from None


def _rejected(connection: openstack.connection.Connection, env: Mapping[str, str]) -> CredentialsError:
    """Tell a wrong password from an unknown project (one unscoped try) and from an expired token."""
    auth = connection.config.get_auth_args()
    auth_type = _auth_type(connection)
    url = auth.get("auth_url", "?")
    if "token" in auth_type:
        return CredentialsError(
            f"Keystone at {url} rejected the token (expired or revoked)",
            fix="get a new token or use a password or application credential",
        )
    if "application" in auth_type:
        return CredentialsError(
            f"Keystone at {url} rejected the application credential (wrong secret, expired or deleted)",
            fix="create a new application credential in Horizon",
        )
    unscoped = {k: v for k, v in auth.items() if not k.startswith("project_") and not k.startswith("tenant_")}
    try:
        from keystoneauth1 import loading, session

        plugin = loading.get_plugin_loader("password").load_from_options(**unscoped)
        session.Session(auth=plugin, verify=connection.session.verify).get_token()
    except ksa.ClientException:
        user = auth.get("username") or auth.get("user_id") or "?"
        return CredentialsError(
            f"Keystone at {url} rejected user {user}: wrong user name or password",
            fix="check OS_USERNAME and OS_PASSWORD, or source your openrc file again",
        )
    project = auth.get("project_name") or auth.get("project_id") or "?"
    return CredentialsError(
        f"project {project} does not exist or {auth.get('username', 'the user')} has no role in it",
        fix="check OS_PROJECT_NAME / OS_PROJECT_ID and OS_PROJECT_DOMAIN_NAME",
    )


def _auth_type(connection: openstack.connection.Connection) -> str:
    return str(connection.config.config.get("auth_type") or "password").lower()


def project_id(connection: openstack.connection.Connection) -> str:
    """The project the connection is scoped to."""
    return str(connection.current_project_id)


def network_id(connection: openstack.connection.Connection, name_or_id: str) -> str:
    """A Neutron network's ID from its name (packer's ``networks`` wants IDs)."""
    try:
        network = connection.network.find_network(name_or_id, ignore_missing=True)
    except (openstack.exceptions.SDKException, ksa.ClientException) as error:
        raise CloudError(f"looking up network {name_or_id}: {first_line(error)}") from None
    if network is None:
        raise NotFoundError(
            f"network {name_or_id} not found in this project", fix="`openstack network list` shows the names"
        )
    return str(network.id)


def project_name(connection: openstack.connection.Connection, env: Mapping[str, str]) -> str:
    """The scoped project's name for messages (the token knows it even when Keystone lists are forbidden)."""
    try:
        access = connection.session.auth.get_access(connection.session)
        return str(access.project_name or env.get("OS_PROJECT_NAME") or access.project_id)
    except (ksa.ClientException, AttributeError):
        return env.get("OS_PROJECT_NAME") or project_id(connection)
