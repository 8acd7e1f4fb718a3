"""A plugin with a protected view and no security policy of its own: loaded without an auth
plugin, its view must stay closed."""

from sensorhub.identity import SENSOR


def secret_view(request):
    return {"secret": "should never be served"}


def includeme(config):
    config.add_route("unguarded_secret", "/unguarded/secret")
    config.add_view(secret_view, route_name="unguarded_secret", permission=SENSOR, renderer="json")
