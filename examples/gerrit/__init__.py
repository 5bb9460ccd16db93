"""A gerrit-like event publisher on the firehose (seed 003, firehose.openstack.org)."""
