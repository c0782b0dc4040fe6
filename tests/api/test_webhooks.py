"""Webhook deliveries to a local receiver: the signature verifies, a 500 is retried, private
addresses are refused (up front, at delivery time and after a redirect)."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import uuid

import pytest

from labeler.annotations.services import save_annotation
from labeler.net_safety import UnsafeURL, fetch, is_public
from labeler.webhooks.models import Delivery, Webhook
from labeler.webhooks.services import SIGNATURE_HEADER, create_webhook
from worker.celery_app import app

from ..conftest import wait_for
from .conftest import client_for
from .receiver import Receiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def eager(settings):
    """Deliveries run in this process, retries at once (the countdown is skipped when eager)."""
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


def label_one(world, user):
    item, label = world.own.items.first(), world.own.classes.first()
    return save_annotation(item, label, user, client_id=uuid.uuid4())[0]


def test_signed_delivery_retried_after_a_500(api_world, settings, eager,
                                             django_capture_on_commit_callbacks):
    settings.LABELER_ALLOW_PRIVATE_URLS = True  # the receiver is on this machine
    with Receiver(script=[(500, {}), (200, {})]) as receiver:
        response = client_for(api_world, "lead").post(
            f"/api/v1/projects/{api_world.own.pk}/webhooks/",
            {"url": receiver.url, "events": ["annotation.created"]}, format="json")
        assert response.status_code == 201
        secret = response.json()["secret"]
        with django_capture_on_commit_callbacks(execute=True):
            annotation = label_one(api_world, api_world.users["annotator"])
        assert len(receiver.requests) == 2  # the 500, then the retry that succeeded
        for request in receiver.requests:
            body = request["body"]
            expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            assert request["headers"][SIGNATURE_HEADER] == expected
            assert request["headers"]["X-Labeler-Event"] == "annotation.created"
        payload = json.loads(receiver.requests[-1]["body"])
        assert payload["event"] == "annotation.created"
        assert payload["project"] == api_world.own.pk
        assert payload["data"]["annotation"] == annotation.pk
        assert payload["data"]["item"] == annotation.item_id
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("delivered", 2, 200)
    log = client_for(api_world, "lead").get(
        f"/api/v1/projects/{api_world.own.pk}/webhooks/{delivery.webhook_id}/deliveries/").json()
    assert log["results"][0]["status"] == "delivered"


def test_gives_up_after_the_last_try(api_world, settings, eager,
                                     django_capture_on_commit_callbacks):
    settings.LABELER_ALLOW_PRIVATE_URLS = True
    settings.LABELER_WEBHOOK_TRIES = 3
    with Receiver(script=[(500, {})]) as receiver:
        create_webhook(api_world.own, receiver.url, ["annotation.created"])
        with django_capture_on_commit_callbacks(execute=True):
            label_one(api_world, api_world.users["lead"])
        assert len(receiver.requests) == 3
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("failed", 3, 500)


def test_private_addresses_are_refused(api_world, settings, eager,
                                       django_capture_on_commit_callbacks):
    settings.LABELER_ALLOW_PRIVATE_URLS = False
    with Receiver() as receiver:
        for url in (receiver.url, "http://localhost/x", "http://10.0.0.1/x",
                    "http://169.254.169.254/latest/meta-data/", "http://[::1]/x",
                    "http://[::ffff:127.0.0.1]/x", "http://0.0.0.0/x", "ftp://example.com/"):
            response = client_for(api_world, "lead").post(
                f"/api/v1/projects/{api_world.own.pk}/webhooks/",
                {"url": url, "events": ["annotation.created"]}, format="json")
            assert response.status_code == 400, url
            assert response.json()["error"]
        # A hook stored while an admin allowed private addresses, delivered after they no
        # longer are: refused at delivery, without retries, and nothing reaches the receiver.
        hook = Webhook.objects.create(project=api_world.own, url=receiver.url, secret="s" * 20,
                                      events=["annotation.created"])
        with django_capture_on_commit_callbacks(execute=True):
            label_one(api_world, api_world.users["lead"])
        assert receiver.requests == []
    delivery = Delivery.objects.get(webhook=hook)
    assert delivery.status == "failed" and delivery.attempts == 1
    assert "private" in delivery.error


def test_a_redirect_to_a_private_address_is_refused(monkeypatch):
    # 127.0.0.1 plays a public server here; 127.0.0.2 (also on this machine) a private one.
    monkeypatch.setattr("worker.net_safety.is_public", lambda a: str(a) == "127.0.0.1")
    with Receiver("127.0.0.2") as inside:
        with Receiver("127.0.0.1", [(307, {"Location": inside.url})]) as outside:
            with pytest.raises(UnsafeURL, match="127.0.0.2"):
                fetch(outside.url, method="POST", body=b"{}", allow_private=False)
            assert len(outside.requests) == 1
        assert inside.requests == []


def test_connects_to_the_checked_address_not_a_new_lookup(monkeypatch):
    """DNS rebinding: the name is resolved once per hop, and that address is used."""
    answers = iter(["127.0.0.1", "127.0.0.2", "127.0.0.2"])
    calls = []
    real = socket.getaddrinfo

    def resolve(host, port, *args, **kwargs):  # (urllib3 resolves the address literal too)
        if host != "hook.test":
            return real(host, port, *args, **kwargs)
        calls.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    monkeypatch.setattr("worker.net_safety.is_public", lambda a: str(a) == "127.0.0.1")
    with Receiver("127.0.0.1") as receiver:
        got = fetch(f"http://hook.test:{receiver.port}/x", allow_private=False)
        assert got.status == 200
        assert calls == ["hook.test"]
        assert receiver.requests[0]["headers"]["Host"] == f"hook.test:{receiver.port}"


@pytest.mark.parametrize("address,public", [
    ("8.8.8.8", True), ("2606:4700::1111", True), ("127.0.0.1", False), ("10.1.2.3", False),
    ("172.16.0.1", False), ("192.168.1.1", False), ("169.254.169.254", False), ("::1", False),
    ("fe80::1", False), ("fc00::1", False), ("0.0.0.0", False), ("100.64.0.1", False),
    ("224.0.0.1", False), ("::ffff:10.0.0.1", False), ("::ffff:8.8.8.8", True),
    ("240.0.0.1", False), ("192.0.2.1", False),
])
def test_public_addresses(address, public):
    import ipaddress

    assert is_public(ipaddress.ip_address(address)) is public


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_delivered_by_a_real_celery_worker(worker_factory, make_user, project_factory,
                                           add_images, settings):
    settings.LABELER_ALLOW_PRIVATE_URLS = True
    worker_factory(LABELER_ALLOW_PRIVATE_URLS="1", LABELER_WEBHOOK_RETRY_SECONDS="1")
    lead = make_user("lead")
    project = project_factory("Hooked", lead=lead)
    item = add_images(project, 1)[0]
    with Receiver(script=[(503, {}), (204, {})]) as receiver:
        create_webhook(project, receiver.url, ["annotation.created"])
        save_annotation(item, project.classes.first(), lead)
        wait_for(lambda: len(receiver.requests) >= 2, 60, 0.2, "two delivery attempts")
    wait_for(lambda: Delivery.objects.filter(status="delivered", attempts=2).exists(), 20, 0.2,
             "the delivery to be logged as delivered")


def test_model_version_ready_is_announced_once(api_world, settings, eager,
                                               django_capture_on_commit_callbacks):
    from .. import lead_fixtures

    settings.LABELER_ALLOW_PRIVATE_URLS = True
    project = api_world.own
    items = lead_fixtures.make_items(project, 30)
    truth = lead_fixtures.embed(project, items, project.backbone)
    with Receiver() as receiver:
        create_webhook(project, receiver.url, ["model_version.ready"])
        with django_capture_on_commit_callbacks(execute=True):
            lead_fixtures.label(project, items[:15], truth, api_world.users["lead"],
                                audit_every=0)
            lead_fixtures.retrain(project)
        events = [json.loads(r["body"]) for r in receiver.requests]
    assert [e["event"] for e in events] == ["model_version.ready"]
    assert events[0]["data"]["model_version"] == 1 and events[0]["project"] == project.pk
    assert "cv_accuracy" in events[0]["data"]["metrics"]


def test_the_lead_sends_a_failed_delivery_again(api_world, settings, eager, client,
                                                django_capture_on_commit_callbacks):
    settings.LABELER_ALLOW_PRIVATE_URLS = True
    settings.LABELER_WEBHOOK_TRIES = 1
    with Receiver(script=[(500, {}), (200, {})]) as receiver:
        hook = create_webhook(api_world.own, receiver.url, ["annotation.created"])
        with django_capture_on_commit_callbacks(execute=True):
            label_one(api_world, api_world.users["lead"])
        delivery = Delivery.objects.get()
        assert delivery.status == "failed"
        client.force_login(api_world.users["lead"])
        page = client.get(f"/projects/{api_world.own.pk}/webhooks/")
        assert b"Send again" in page.content and receiver.url.encode() in page.content
        with django_capture_on_commit_callbacks(execute=True):
            sent = client.post(f"/projects/{api_world.own.pk}/webhooks/",
                               {"action": "redeliver", "delivery": delivery.pk})
        assert sent.status_code == 302 and len(receiver.requests) == 2
    delivery.refresh_from_db()
    assert delivery.status == "delivered" and hook.deliveries.count() == 1
    client.force_login(api_world.users["annotator"])  # not theirs to manage
    assert client.post(f"/projects/{api_world.own.pk}/webhooks/",
                       {"action": "redeliver", "delivery": delivery.pk}).status_code == 403
