#pragma once
// Tests reach into containers' network namespaces the way feuilled does: a
// thread of their own enters the namespace (setns) and whatever sockets it
// makes there belong to it, so test code can talk to 127.0.0.1 inside a
// container, or try what a tenant's process could reach from there.
#include <functional>
#include <string>

namespace feuille::test {

// A container's network namespace path (NetworkSettings.SandboxKey), from
// the fixture's Podman (or `podman_url`). Throws when there is none.
std::string sandbox_key(const std::string& container, const std::string& podman_url = "");

// Runs fn on a fresh thread inside the namespace at `ns_path` and waits for
// it; an exception thrown by fn is thrown here.
void in_netns(const std::string& ns_path, const std::function<void()>& fn);

// What a plain TCP connect from inside the namespace gets: "connected",
// "refused", "unreachable" or "timeout" (within `timeout_ms`).
std::string connect_from(const std::string& ns_path, const std::string& address, int port, int timeout_ms = 1500);

}  // namespace feuille::test
