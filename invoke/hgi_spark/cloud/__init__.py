"""OpenStack: the only package that imports openstacksdk or keystoneauth. Credentials, the
connection, Glance, and Nova/Neutron/Cinder queries returned as plain data."""
