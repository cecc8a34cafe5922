"""How one request reaches Caselle Connect (SPEC §6, §8, §9): validate, send, retry, fail
over. :class:`Executor` is the part of :class:`caselle_ic.connect.client.CaselleClient`
that sends; every operation goes through its :meth:`~Executor.execute`.

* **Validation**: every document is validated against ``schemas/caselle_connect.graphql``
  before anything is sent; a failure raises :class:`SchemaValidationError`.
* **Retries**: only where a repeat cannot duplicate. A request that never left
  (:class:`NotSent`) is retried with backoff (``max_attempts``, default 4). A lost answer
  (:class:`AnswerLost`, HTTP 5xx, GraphQL INTERNAL) is retried only for *repeatable*
  operations — queries and ``customer_send_paper_invoice_update`` — and, while the server
  keeps answering, for up to ``retry_window`` seconds (a burst of 500s is ridden out,
  issue 13.11). For ``create_receipt`` and ``void_receipt`` it is an
  :class:`OutcomeUnknownError`: the caller settles with ``receipts(confirmationNumber:)``
  before sending again.
* **Failover**: from the primary endpoint to its secondary (8→88, 14→111) when the primary
  refuses connections or keeps failing; the client then stays on the secondary.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any

from graphql import DocumentNode

from caselle_ic.connect.auth import OAuthClientCredentials, rejected
from caselle_ic.connect.documents import operation_of, printed, validate_document
from caselle_ic.connect.models import Answer, MalformedAnswerError, error_code
from caselle_ic.connect.transport import GraphQLEndpoint, Lost, NotSent, Unauthorized, backoff_delay
from caselle_ic.errors import CaselleAPIError, FatalAPIError, OutcomeUnknownError, ServerError, TransportError

# the client's logger: retries and failovers keep its name
log = logging.getLogger("caselle_ic.connect.client")

NOT_SENT_ATTEMPTS = 4  # default tries when an endpoint cannot be reached at all


class Executor:
    """Sends a validated document to the active endpoint, retrying and failing over.

    The attributes are the client's (:class:`caselle_ic.connect.client.CaselleClient`
    sets them up): the endpoints, which one is active, the retry budget, the counters.
    """

    _targets: list[GraphQLEndpoint]
    _active: int
    max_attempts: int | None
    retry_window: float
    backoff: float
    failovers: int
    answers: int

    # -- the one place requests are sent ---------------------------------------------------
    def execute(
        self,
        document: DocumentNode,
        variables: Mapping[str, Any] | None = None,
        *,
        operation: str | None = None,
    ) -> Answer:
        """Validate, send, retry and fail over as the module docstring says.

        Returns the checked GraphQL answer (data and errors). Raises OutcomeUnknownError
        when a non-repeatable mutation's answer was lost (MalformedAnswerError when it came
        back unusable); TransportError / ServerError when no endpoint could answer;
        CredentialsRejectedError when auth fails after a refresh.
        """
        root, _mutation, repeatable = operation_of(document)
        operation = operation or root
        validate_document(document, operation)
        payload = json.dumps({"query": printed(document), "variables": dict(variables or {})}).encode()
        started = time.monotonic()
        last: CaselleAPIError | None = None
        order = list(range(self._active, len(self._targets))) + list(range(self._active))
        for position, index in enumerate(order):
            target = self._targets[index]
            has_next = position + 1 < len(order)
            refreshed = False
            attempt = 0
            while True:
                attempt += 1
                try:
                    answer = self._exchange(target, payload, operation, repeatable)
                except Unauthorized:
                    if isinstance(target.auth, OAuthClientCredentials) and not refreshed:
                        log.info("%s: %s refused the token; fetching a new one", operation, target.name)
                        refreshed = True
                        target.auth.refresh()
                        attempt -= 1
                        continue
                    raise rejected(target.name, operation, refreshed) from None
                except NotSent as exc:
                    last = TransportError(
                        f"cannot reach the {target.name} endpoint ({exc.reason})", operation=operation
                    )
                    if exc.refused and has_next:
                        break
                    if self._retry(operation, target.name, exc.reason, attempt, started, answering=False):
                        continue
                    break
                except Lost as exc:
                    if not repeatable:
                        raise OutcomeUnknownError(
                            f"the {target.name} endpoint took the request and the answer was lost "
                            f"({exc.reason}); settle with receipts(confirmationNumber:) before sending again",
                            operation=operation,
                            status=exc.status,
                        ) from None
                    last = ServerError(
                        f"the {target.name} endpoint failed ({exc.reason})",
                        operation=operation,
                        status=exc.status,
                    )
                    # With a secondary to go to, a failing primary gets the short budget.
                    if self._retry(
                        operation, target.name, exc.reason, attempt, started, answering=not has_next
                    ):
                        continue
                    break
                if index != self._active:
                    log.warning(
                        "%s: failed over from %s to %s; staying there for this client",
                        operation,
                        self._targets[self._active].name,
                        target.name,
                    )
                    self._active = index
                    self.failovers += 1
                return answer
            if has_next:
                log.warning(
                    "%s: giving up on %s (%s); trying %s",
                    operation,
                    target.name,
                    last,
                    self._targets[order[position + 1]].name,
                )
        assert last is not None
        raise last

    def _exchange(self, target: GraphQLEndpoint, payload: bytes, operation: str, repeatable: bool) -> Answer:
        try:
            answer = target.execute(payload, operation)
        except Lost as exc:
            if exc.status is not None:  # a 5xx is an answer: the server is there
                self.answers += 1
            raise
        except (MalformedAnswerError, FatalAPIError, Unauthorized):
            self.answers += 1
            raise
        self.answers += 1
        if (
            answer.data is None
            and answer.errors
            and all(error_code(e) == "UNAUTHENTICATED" for e in answer.errors)
        ):
            raise Unauthorized()
        # A repeatable operation is simply asked again; for the others an INTERNAL error
        # becomes OutcomeUnknownError per item (api_error).
        if repeatable and any(error_code(e) == "INTERNAL" for e in answer.errors):
            raise Lost("GraphQL INTERNAL error")
        return answer

    def _retry(
        self, operation: str, endpoint: str, reason: str, attempt: int, started: float, *, answering: bool
    ) -> bool:
        """Sleep and say yes when another attempt is allowed: ``max_attempts`` when given;
        else 4 tries for an endpoint that cannot be reached, and for one that answers
        (5xx, lost answers of repeatable requests) as long as ``retry_window`` lasts."""
        delay = backoff_delay(self.backoff, attempt)
        if self.max_attempts is not None:
            allowed = attempt < self.max_attempts
        elif answering:
            allowed = time.monotonic() + delay - started < self.retry_window
        else:
            allowed = attempt < NOT_SENT_ATTEMPTS
        if not allowed:
            return False
        log.warning(
            "%s: %s on %s (attempt %d); retrying in %.2f s", operation, reason, endpoint, attempt, delay
        )
        time.sleep(delay)
        return True


__all__ = ["NOT_SENT_ATTEMPTS", "Executor"]
