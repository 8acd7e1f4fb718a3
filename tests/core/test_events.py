"""Domain events: published by one plugin, heard by others, without Pyramid's own events."""

from dataclasses import dataclass

from pyramid.config import Configurator

from sensorhub.events import SensorAuthenticated, publish

PRODUCTION_PLUGINS = ("logging", "metrics", "auth", "ingest")


@dataclass(frozen=True)
class Unheard:
    request: object


def test_subscribers_hear_the_events_of_their_type_in_the_order_they_subscribed():
    config = Configurator()
    config.include("sensorhub.events")
    heard = []
    config.add_event_subscriber(lambda event: heard.append(("first", event)), SensorAuthenticated)
    config.add_event_subscriber(lambda event: heard.append(("second", event)), SensorAuthenticated)
    event = SensorAuthenticated(None, "sen_1")
    publish(config.registry, event)
    publish(config.registry, Unheard(None))
    assert heard == [("first", event), ("second", event)]


def test_the_production_plugins_leave_pyramid_without_subscribers(app_factory):
    """Any Pyramid subscriber makes Pyramid notify its lifecycle events (NewRequest, ContextFound,
    BeforeRender, NewResponse) on every request, ~11 µs a request: the plugins subscribe to
    domain events through the core instead."""
    app = app_factory(plugins=PRODUCTION_PLUGINS)
    assert not app.registry.has_listeners


def test_a_plugin_subscribed_the_pyramid_way_still_hears_domain_events():
    """0.1.0's way (``config.add_subscriber``) keeps working, at the cost above."""
    config = Configurator()
    config.include("sensorhub.events")
    heard = []
    config.add_subscriber(heard.append, SensorAuthenticated)
    config.commit()
    event = SensorAuthenticated(None, "sen_1")
    publish(config.registry, event)
    assert heard == [event]
