"""A recording proxy in front of a real provider plugin, for building a stack's state
without touching any host or cluster.

`pulumi up` with this proxy first on PATH runs the real program and the real engine; every
call (GetPluginInfo, Handshake, CheckConfig, Configure, Check, Diff, ...) goes to the real
plugin, whose path is given as the first argument. Only Create, Update and Delete are
answered here: the resource is recorded with its checked inputs as outputs (plus empty
stdout/stderr for pulumi-command, whose outputs are its inputs and the two streams:
pulumi/pulumi-command provider/pkg/provider/remote/command.go, CommandOutputs embeds
CommandInputs), and nothing runs. The state that results is the one a successful `up`
writes, minus what the hosts would have printed, so a later `pulumi preview` against it
(with the real plugins) shows the real engine's diff of a config change.

Usage (by tests/engine/plan_state.py): record_provider.py record|check <real plugin> [plugin args...]
(`check`: only the helm Release Check below, for previews of a recorded stack).
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from concurrent import futures

import grpc
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import provider_pb2

SERVICE = "/pulumirpc.ResourceProvider/"
COMMAND_TYPE = "command:remote:Command"
RELEASE_TYPE = "kubernetes:helm.sh/v3:Release"
SECRET = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270"}


def _type_of(urn: str, given: str) -> str:
    return given or urn.split("::")[2].split("$")[-1]


def _outputs(typ: str, props: struct_pb2.Struct) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.CopyFrom(props)
    if typ == COMMAND_TYPE:
        out.update({"stdout": "", "stderr": ""})
    elif typ == RELEASE_TYPE:
        # pulumi-kubernetes provider/pkg/provider/helm_release.go checkpointRelease: the
        # inputs ride along as the secret `__inputs`, which Diff reads back.
        inputs = struct_pb2.Struct()
        inputs.update({**SECRET, "value": {}})
        inputs["value"].CopyFrom(props)
        out["__inputs"] = inputs
        out.update({"status": {"status": "deployed"}})
    return out


def check_release(request: provider_pb2.CheckRequest, context) -> provider_pb2.CheckResponse:
    """helm Release Check without the chart download: upstream's Check (helm_release.go
    Check) loads the chart from its repository to pin `version` to the chart's exact
    version, which the test machine cannot reach; our versions are exact pins already, and
    the program sets namespace and timeout itself (setDefaults' only defaults)."""
    return provider_pb2.CheckResponse(inputs=request.news)


def create(request: provider_pb2.CreateRequest, context) -> provider_pb2.CreateResponse:
    name = request.urn.split("::")[-1]
    return provider_pb2.CreateResponse(
        id=f"{name}-{secrets.token_hex(4)}",
        properties=_outputs(_type_of(request.urn, request.type), request.properties))


def update(request: provider_pb2.UpdateRequest, context) -> provider_pb2.UpdateResponse:
    return provider_pb2.UpdateResponse(properties=_outputs(_type_of(request.urn, request.type), request.news))


def delete(request: provider_pb2.DeleteRequest, context) -> empty_pb2.Empty:
    return empty_pb2.Empty()


INTERCEPTED = {
    "Create": (create, provider_pb2.CreateRequest, provider_pb2.CreateResponse),
    "Update": (update, provider_pb2.UpdateRequest, provider_pb2.UpdateResponse),
    "Delete": (delete, provider_pb2.DeleteRequest, empty_pb2.Empty),
}


class Proxy(grpc.GenericRpcHandler):
    def __init__(self, channel: grpc.Channel, record: bool):
        self.channel = channel
        self.record = record

    def service(self, details):
        method = details.method
        name = method.rsplit("/", 1)[-1]
        if method.startswith(SERVICE) and name == "Check":
            real_check = self.channel.unary_unary(
                method, request_serializer=provider_pb2.CheckRequest.SerializeToString,
                response_deserializer=provider_pb2.CheckResponse.FromString)

            def check(request, context):
                if _type_of(request.urn, request.type) == RELEASE_TYPE:
                    return check_release(request, context)
                try:
                    return real_check(request, timeout=600)
                except grpc.RpcError as e:
                    context.abort(e.code(), e.details() or "")
            return grpc.unary_unary_rpc_method_handler(
                check, request_deserializer=provider_pb2.CheckRequest.FromString,
                response_serializer=provider_pb2.CheckResponse.SerializeToString)
        if self.record and method.startswith(SERVICE) and name in INTERCEPTED:
            fn, req, resp = INTERCEPTED[name]
            return grpc.unary_unary_rpc_method_handler(
                fn, request_deserializer=req.FromString, response_serializer=resp.SerializeToString)
        forward = self.channel.unary_unary(method)  # raw bytes both ways

        def call(request: bytes, context):
            try:
                return forward(request, timeout=600)
            except grpc.RpcError as e:
                context.abort(e.code(), e.details() or "")
        return grpc.unary_unary_rpc_method_handler(call)


def main() -> None:
    mode, real, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    proc = subprocess.Popen([real, *args], stdout=subprocess.PIPE, text=True)
    port = proc.stdout.readline().strip()
    if not port.isdigit():
        sys.exit(f"record_provider: {real} did not print a port")
    limit = 400 * 1024 * 1024
    options = [("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)]
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=options)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=options,
                         handlers=[Proxy(channel, record=mode == "record")])
    mine = server.add_insecure_port("127.0.0.1:0")
    server.start()
    sys.stdout.write(f"{mine}\n")
    sys.stdout.flush()
    try:
        server.wait_for_termination()
    finally:
        proc.terminate()


if __name__ == "__main__":
    main()
