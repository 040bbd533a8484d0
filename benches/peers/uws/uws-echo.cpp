// uWebSockets echo peer for benches/echo.sh (the issue 8 comparison).
//
// Our file, built against a local copy of uWebSockets that stays outside this
// repository (benches/peers/uws/build.sh): none of uWebSockets' code is
// committed here. Usage: uws-echo --listen HOST:PORT (or HOST:PORT).
//
// Like the other peers: every path, every text/binary message echoed with its
// opcode, no permessage-deflate, nothing printed per message. Heartbeats as
// in uWebSockets' own EchoServer example (idleTimeout 16 s with automatic
// pings), the configuration behind the 272 B per idle connection quoted in
// DESIGN.md.
#include "App.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

struct PerSocketData {};

static bool parse_listen(const char *arg, std::string &host, int &port) {
    const char *colon = std::strrchr(arg, ':');
    if (!colon) return false;
    host.assign(arg, static_cast<size_t>(colon - arg));
    port = std::atoi(colon + 1);
    return port > 0 && port < 65536;
}

int main(int argc, char **argv) {
    std::string host = "127.0.0.1";
    int port = 9001;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!std::strcmp(a, "--listen") && i + 1 < argc) a = argv[++i];
        else if (!std::strcmp(a, "-h") || !std::strcmp(a, "--help")) {
            std::fprintf(stderr, "usage: uws-echo [--listen] HOST:PORT\n");
            return 0;
        }
        if (!parse_listen(a, host, port)) {
            std::fprintf(stderr, "uws-echo: bad listen address: %s\n", a);
            return 2;
        }
    }
    uWS::App()
        .ws<PerSocketData>("/*", {
            .compression = uWS::DISABLED,
            .maxPayloadLength = 64 * 1024 * 1024,
            .idleTimeout = 16,
            .maxBackpressure = 64 * 1024 * 1024,
            .closeOnBackpressureLimit = false,
            .resetIdleTimeoutOnSend = false,
            .sendPingsAutomatically = true,
            .message = [](auto *ws, std::string_view message, uWS::OpCode opCode) {
                ws->send(message, opCode, false);
            },
        })
        .listen(host, port, [&](auto *listen_socket) {
            if (listen_socket) {
                std::fprintf(stderr, "uws-echo listening on %s:%d\n", host.c_str(), port);
            } else {
                std::fprintf(stderr, "uws-echo: cannot listen on %s:%d\n", host.c_str(), port);
                std::exit(1);
            }
        })
        .run();
    return 0;
}
