"""fitco.billing.v1.BillingService: converts requests and answers, delegates to the domain.

Authentication and access (PUBLIC / USER / ADMIN / INTERNAL, from the contract) are done by
the interceptor before any of this runs; request field limits by fitcore.validation.
"""

from __future__ import annotations

from typing import Protocol

import grpc
from fitco.billing.v1 import billing_pb2, billing_pb2_grpc

from billing.api import convert
from billing.domain.checkout import Checkout
from billing.domain.idempotency import HEADER, Idempotency, check_key, request_hash
from billing.domain.subscriptions import Subscriptions
from billing.plans import PLANS
from fitcore.auth import current_principal

# The provider's signature header, as gRPC metadata (Envoy passes HTTP headers on lowercased).
SIGNATURE_HEADER = "provider-signature"


class WebhookReceiver(Protocol):
    def receive(self, raw: bytes, signature: str) -> bool:
        """Verify and apply one delivery; True when it was a duplicate."""
        ...


def _metadata(context: grpc.ServicerContext, name: str) -> str | None:
    for key, value in context.invocation_metadata():
        if key == name and isinstance(value, str):
            return value
    return None


class BillingServicer(billing_pb2_grpc.BillingServiceServicer):
    def __init__(
        self,
        checkout: Checkout,
        idempotency: Idempotency,
        subscriptions: Subscriptions,
        webhooks: WebhookReceiver,
    ) -> None:
        self._checkout = checkout
        self._idempotency = idempotency
        self._subscriptions = subscriptions
        self._webhooks = webhooks

    def ListPlans(
        self, request: billing_pb2.ListPlansRequest, context: grpc.ServicerContext
    ) -> billing_pb2.ListPlansResponse:
        return billing_pb2.ListPlansResponse(plans=[convert.plan(p) for p in PLANS.values()])

    def Checkout(
        self, request: billing_pb2.CheckoutRequest, context: grpc.ServicerContext
    ) -> billing_pb2.CheckoutResponse:
        user_id = current_principal().user_id
        key = check_key(_metadata(context, HEADER))
        digest = request_hash(
            "Checkout",
            {"plan_id": request.plan_id, "payment_method_token": request.payment_method_token},
        )

        def run() -> bytes:
            result = self._checkout.checkout(user_id, request.plan_id, request.payment_method_token)
            answer = billing_pb2.CheckoutResponse(
                subscription=convert.subscription(result.subscription),
                entitlements=convert.entitlements(result.entitlements),
            )
            if result.payment is not None:
                answer.payment.CopyFrom(convert.payment(result.payment))
            return answer.SerializeToString()

        # The stored first answer for this key, or this request's own.
        return billing_pb2.CheckoutResponse.FromString(
            self._idempotency.run(user_id, key, digest, run)
        )

    def GetSubscription(
        self, request: billing_pb2.GetSubscriptionRequest, context: grpc.ServicerContext
    ) -> billing_pb2.GetSubscriptionResponse:
        state = self._subscriptions.get(current_principal().user_id)
        return billing_pb2.GetSubscriptionResponse(
            subscription=convert.subscription(state.subscription),
            entitlements=convert.entitlements(state.entitlements),
            payments=[convert.payment(p) for p in state.payments],
        )

    def CancelSubscription(
        self, request: billing_pb2.CancelSubscriptionRequest, context: grpc.ServicerContext
    ) -> billing_pb2.CancelSubscriptionResponse:
        state = self._subscriptions.cancel(current_principal().user_id, request.at_period_end)
        return billing_pb2.CancelSubscriptionResponse(
            subscription=convert.subscription(state.subscription),
            entitlements=convert.entitlements(state.entitlements),
        )

    def ListSubscriptions(
        self, request: billing_pb2.ListSubscriptionsRequest, context: grpc.ServicerContext
    ) -> billing_pb2.ListSubscriptionsResponse:
        views, token = self._subscriptions.list_all(
            request.status, request.page_size, request.page_token
        )
        return billing_pb2.ListSubscriptionsResponse(
            subscriptions=[convert.subscription(v) for v in views], next_page_token=token
        )

    def RefundPayment(
        self, request: billing_pb2.RefundPaymentRequest, context: grpc.ServicerContext
    ) -> billing_pb2.RefundPaymentResponse:
        result = self._subscriptions.refund(request.payment_id, request.amount, request.reason)
        return billing_pb2.RefundPaymentResponse(
            payment=convert.payment(result.payment),
            subscription=convert.subscription(result.subscription),
        )

    def ReceiveWebhook(
        self, request: billing_pb2.ReceiveWebhookRequest, context: grpc.ServicerContext
    ) -> billing_pb2.ReceiveWebhookResponse:
        # The signature covers the exact bytes the provider sent: never re-encode the body.
        duplicate = self._webhooks.receive(
            request.body.data, _metadata(context, SIGNATURE_HEADER) or ""
        )
        return billing_pb2.ReceiveWebhookResponse(duplicate=duplicate)

    def GetEntitlements(
        self, request: billing_pb2.GetEntitlementsRequest, context: grpc.ServicerContext
    ) -> billing_pb2.GetEntitlementsResponse:
        # INTERNAL: a coach or monolith service token (checked by the interceptor) and the
        # user's own token, which says whose entitlements these are.
        view = self._subscriptions.entitlements(current_principal().user_id)
        return billing_pb2.GetEntitlementsResponse(entitlements=convert.entitlements(view))
