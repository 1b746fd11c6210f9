"""The DIMSE SCP: C-ECHO, C-STORE and Query/Retrieve (C-FIND, C-MOVE, C-GET; PS3.4 annex C,
dicom_node.dimse.services) with peer access control.

pynetdicom supplies the PDU and command-set codecs and presentation-context negotiation; the
transport is our own thread-per-association loop (dicom_node.dimse.association), because
pynetdicom's polling reactors cost 2-3 ms per message, more than storing an instance.
Handlers are registered as data and never raise: every request gets a named status
(dicom_node.dimse.status) and, on failure, a short ErrorComment.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Mapping

from pydicom.uid import UID
from pynetdicom import AllStoragePresentationContexts
from pynetdicom.presentation import PresentationContext, build_context
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from dicom_node.config.models import DimseConfig
from dicom_node.dimse import pdu
from dicom_node.dimse.association import (
    AssociationLog,
    CommandField,
    DimseRequest,
    Handler,
    Reply,
    ServiceHandler,
    serve_association,
)
from dicom_node.dimse.negotiation import AcceptorPolicy
from dicom_node.dimse.qr import QueryRetrieveContext, query_retrieve_contexts
from dicom_node.dimse.services import query_retrieve_services
from dicom_node.dimse.status import Status
from dicom_node.dimse.syntaxes import ACCEPTED_TRANSFER_SYNTAXES
from dicom_node.errors import (
    InvalidInstanceError,
    StorageError,
)
from dicom_node.storage import InstanceStore, Receipt
from dicom_node.storage.instances import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from dicom_node.tls import server_context

__all__ = ["DimseServer", "bind_listener"]

logger = logging.getLogger(__name__)

_ERROR_COMMENT_MAX = 64  # LO (PS3.5 6.2)


def _status(code: Status, comment: str = "") -> Reply:
    return Reply(int(code), comment[:_ERROR_COMMENT_MAX])


def _supported_contexts(query_retrieve: bool) -> list[PresentationContext]:
    syntaxes: list[str | UID] = list(ACCEPTED_TRANSFER_SYNTAXES)
    contexts = [build_context(Verification, syntaxes)]
    storage = [
        build_context(context.abstract_syntax, syntaxes)
        for context in AllStoragePresentationContexts
        if context.abstract_syntax is not None
    ]
    if query_retrieve:
        # SCP/SCU Role Selection accepted for storage (PS3.7 D.3.3.4): a C-GET requestor
        # takes the SCP role and the node sends its C-STORE sub-operations as SCU.
        for context in storage:
            context.scu_role, context.scp_role = True, True
        contexts += query_retrieve_contexts()
    return contexts + storage


def handle_echo(_request: DimseRequest, record: AssociationLog) -> Reply:
    record.echoes += 1
    return _status(Status.SUCCESS)


def make_store_handler(store: InstanceStore) -> Handler:
    def handle_store(request: DimseRequest, record: AssociationLog) -> Reply:
        try:
            if request.dataset is None:
                raise InvalidInstanceError("C-STORE request without a dataset")
            outcome = store.store(
                request.dataset,
                Receipt(
                    transfer_syntax_uid=request.transfer_syntax,
                    affected_sop_class_uid=request.command.affected_sop_class_uid,
                    affected_sop_instance_uid=request.command.affected_sop_instance_uid,
                    calling_ae_title=request.calling_ae_title,
                    called_ae_title=request.called_ae_title,
                    source_address=request.address,
                ),
            )
        except StorageError as exc:
            record.failed += 1
            logger.warning("C-STORE refused: %s", exc, extra={"peer": record.peer})
            return _status(Status(exc.status), str(exc))
        except Exception:
            record.failed += 1
            logger.exception("C-STORE failed unexpectedly", extra={"peer": record.peer})
            return _status(Status.FAILURE_PROCESSING, "internal error while storing")
        if outcome.uids_repaired:
            record.warnings += 1
            return _status(
                Status.WARNING_COERCION_OF_DATA_ELEMENTS,
                "node supplied " + ",".join(k.removesuffix("UID") for k in outcome.uids_repaired),
            )
        record.stored += 1
        return _status(Status.SUCCESS)

    return handle_store


def bind_listener(config: DimseConfig, port: int | None = None) -> socket.socket:
    """A listening TCP socket on dimse.host and `port` (default dimse.port; 0: a free port)."""
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((config.host, config.port if port is None else port))
    listener.listen(128)
    return listener


class DimseServer:
    """Listens, accepts, and runs each association in its own thread."""

    def __init__(
        self,
        config: DimseConfig,
        ae_title: str,
        store: InstanceStore,
        query_retrieve: QueryRetrieveContext | None = None,
    ) -> None:
        """`query_retrieve`: what the C-FIND/C-MOVE/C-GET SCP needs (None: not offered)."""
        self._config = config
        self._policy = AcceptorPolicy(
            ae_title=ae_title,
            allowed_peers=config.allowed_peers,
            supported_contexts=_supported_contexts(query_retrieve is not None),
            max_pdu_size=config.max_pdu_size,
            implementation_class_uid=IMPLEMENTATION_CLASS_UID,
            implementation_version_name=IMPLEMENTATION_VERSION_NAME,
        )
        self._handlers: Mapping[int, Handler] = {
            CommandField.C_ECHO_RQ: handle_echo,
            CommandField.C_STORE_RQ: make_store_handler(store),
        }
        self._services: Mapping[int, ServiceHandler] = (
            query_retrieve_services(query_retrieve) if query_retrieve is not None else {}
        )
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        # dimse.tls: the handshake runs in the association's thread (PS3.15 B.9).
        self._tls_context = server_context(config.tls) if config.tls is not None else None
        self._tls_listener: socket.socket | None = None
        self._tls_acceptor: threading.Thread | None = None
        self._stopping = threading.Event()
        self._active: dict[threading.Thread, socket.socket] = {}
        self._active_lock = threading.Lock()

    @property
    def address(self) -> tuple[str, int]:
        if self._listener is None:
            raise RuntimeError("DIMSE server is not started")
        host, port = self._listener.getsockname()[:2]
        return str(host), int(port)

    def start(
        self, listener: socket.socket | None = None, tls_listener: socket.socket | None = None
    ) -> tuple[str, int]:
        """Serve on `listener` (a listening socket shared with other worker processes), or
        on a new one bound to dimse.host/port. With dimse.tls and no dimse.tls.port that
        socket speaks only TLS; with dimse.tls.port it stays plain and `tls_listener` (or a
        new socket on that port) speaks TLS."""
        listener = listener or bind_listener(self._config)
        listener.settimeout(0.2)
        self._listener = listener
        tls = self._config.tls
        separate_tls = tls is not None and tls.port is not None
        self._acceptor = threading.Thread(
            target=self._accept_loop,
            args=(listener, None if separate_tls else self._tls_context),
            name="dimse-accept",
        )
        self._acceptor.start()
        if tls is not None and tls.port is not None:
            tls_listener = tls_listener or bind_listener(self._config, tls.port)
            tls_listener.settimeout(0.2)
            self._tls_listener = tls_listener
            self._tls_acceptor = threading.Thread(
                target=self._accept_loop,
                args=(tls_listener, self._tls_context),
                name="dimse-accept-tls",
            )
            self._tls_acceptor.start()
        return self.address

    def _at_capacity(self) -> bool:
        with self._active_lock:
            return len(self._active) > self._config.max_associations

    def _accept_loop(self, listener: socket.socket, tls_context: ssl.SSLContext | None) -> None:
        while not self._stopping.is_set():
            try:
                connection, address = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stopping.is_set():
                    return
                logger.exception("accepting a DIMSE connection failed")
                time.sleep(0.1)
                continue
            connection.setblocking(True)
            # Without TCP_NODELAY every small PDU waits for the peer's delayed ACK (~40 ms).
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            thread = threading.Thread(
                target=self._run,
                args=(connection, address, tls_context),
                name=f"dimse-{address[0]}",
            )
            with self._active_lock:
                self._active[thread] = connection
            thread.start()

    def _handshake(
        self, connection: socket.socket, address: tuple[str, int], context: ssl.SSLContext
    ) -> ssl.SSLSocket | None:
        """The TLS server handshake, bounded by the ACSE timeout. A failed one (a plain
        association on a TLS port, no or an untrusted client certificate) is logged and the
        connection closed: the peer gets no association."""
        connection.settimeout(self._config.acse_timeout_s)
        try:
            secured = context.wrap_socket(connection, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            connection.close()
            peer = f"{address[0]}:{address[1]}"
            reason = getattr(exc, "reason", None) or type(exc).__name__
            logger.warning("TLS handshake failed peer=%s: %s", peer, reason, extra={"peer": peer})
            return None
        with self._active_lock:
            self._active[threading.current_thread()] = secured
        return secured

    def _run(
        self,
        connection: socket.socket,
        address: tuple[str, int],
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        try:
            if tls_context is not None:
                secured = self._handshake(connection, address, tls_context)
                if secured is None:
                    return
                connection = secured
            serve_association(
                connection,
                address,
                self._policy,
                self._handlers,
                services=self._services,
                at_capacity=self._at_capacity,
                acse_timeout_s=self._config.acse_timeout_s,
                network_timeout_s=self._config.network_timeout_s,
            )
        finally:
            with self._active_lock:
                self._active.pop(threading.current_thread(), None)

    def stop(self, grace_s: float) -> None:
        """Stop accepting, let running associations finish for `grace_s`, then abort them."""
        if self._listener is None:
            return
        self._stopping.set()
        for acceptor in (self._acceptor, self._tls_acceptor):
            if acceptor is not None:
                acceptor.join()
        self._listener.close()
        self._listener = None
        if self._tls_listener is not None:
            self._tls_listener.close()
            self._tls_listener = None
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            with self._active_lock:
                if not self._active:
                    return
            time.sleep(0.05)
        with self._active_lock:
            running = list(self._active.items())
        for thread, connection in running:
            logger.warning("aborting association still running at shutdown")
            with contextlib.suppress(OSError):
                if not isinstance(connection, ssl.SSLSocket):
                    # A TLS stream must not be written while its own thread reads it.
                    connection.sendall(pdu.abort_pdu(0x02, 0x00))
                connection.shutdown(socket.SHUT_RDWR)
            thread.join(timeout=10)
