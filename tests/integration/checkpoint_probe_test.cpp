// The checkpoint probe (compute/checkpoint_probe.hpp) against real Podman and
// CRIU: the fixture's service has the CRIU of scripts/criu on its PATH; a
// private service without it stands for a host with no CRIU.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <thread>

#include "compute/checkpoint_probe.hpp"
#include "compute/standin_image.hpp"
#include "dev/podman_service.hpp"
#include "support/http_client.hpp"
#include "support/podman.hpp"
#include "support/process.hpp"
#include "support/run_coro.hpp"
#include "support/workspace_daemon.hpp"
#include "util/child_process.hpp"

using namespace feuille;
using namespace feuille::test;
using namespace std::chrono_literals;
using ::testing::HasSubstr;

namespace {

compute::ProbeRuntime standin_runtime(const std::string& instance, const std::string& user) {
  return {instance, "runc", standin_image(), compute::standin_runtime_command("/mrp/v1/capabilities"), user,
          compute::Isolation{test_egress_address()}};
}

compute::CheckpointProbe probe(TestPodman& podman, const compute::ProbeRuntime& r) {
  boost::asio::io_context ioc;
  compute::PodmanClient client(ioc.get_executor(), podman.client().url(), {});
  auto spec = compute::checkpoint_probe_spec(r);
  return run_coro(ioc, [&]() { return compute::probe_checkpoint(client, spec, 30s); }, 60s);
}

}  // namespace

TEST(CheckpointProbe, ARootRuntimeIsCheckpointedAndNothingIsLeft) {
  TestPodman podman;
  auto result = probe(podman, standin_runtime("probe-test-root", "0"));
  EXPECT_TRUE(result.works) << result.detail;
  EXPECT_GT(result.archive_bytes, 10'000u);  // a tar of the dump, not an empty answer
  EXPECT_THAT(result.detail, HasSubstr("a checkpoint of a runtime took"));
  EXPECT_FALSE(podman.inspect("feuille-criu-probe-probe-test-root"));
}

TEST(CheckpointProbe, AFailedCheckpointIsAnAnswerAndLeavesNothing) {
  TestPodman podman;
  // A runtime that exits at once: the checkpoint finds nothing to dump.
  auto r = standin_runtime("probe-test-exits", "0");
  r.command = "/feuille-standin no-such-mode";
  auto result = probe(podman, r);
  EXPECT_FALSE(result.works);
  EXPECT_THAT(result.detail, HasSubstr("checkpoint feuille-criu-probe-probe-test-exits"));
  EXPECT_FALSE(podman.inspect("feuille-criu-probe-probe-test-exits"));
}

TEST(CheckpointProbe, APodmanWithoutCriuSaysSo) {
  // A private service whose PATH has no criu (the fixture's has build/criu first).
  setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
  if (find_program("criu")) GTEST_SKIP() << "this machine has a criu on its system PATH";
  TempDir dir;
  dev::PodmanService service(dir.path() + "/podman", "runc");
  service.start();
  // Its spool for checkpoint archives is its own folder's, not /var/tmp.
  std::ifstream environ("/proc/" + std::to_string(service.pid()) + "/environ");
  std::string env((std::istreambuf_iterator<char>(environ)), {});
  EXPECT_THAT(env, HasSubstr(std::string("TMPDIR=") + dir.path() + "/podman/tmp"));
  TestPodman podman(service.url());
  auto result = probe(podman, standin_runtime("probe-test-nocriu", "0"));
  EXPECT_FALSE(result.works);
  EXPECT_THAT(result.detail, HasSubstr("checkpoint feuille-criu-probe-probe-test-nocriu"));
  EXPECT_FALSE(podman.inspect("feuille-criu-probe-probe-test-nocriu"));
}

TEST(CheckpointProbe, TheDaemonReportsItInReadyzTheWorkspaceAndMetrics) {
  WorkspaceDaemon w({"--runtime-user", "0"});
  auto token = w.login("ada");
  // The probe runs in the background after the start.
  nlohmann::json host;
  for (int i = 0; i < 300; ++i) {
    auto ready = http_request(w.daemon->port(), "GET", "/readyz");
    host = nlohmann::json::parse(ready.body)["checks"]["host:local"];
    if (host.contains("criu") && !host["criu"].is_null()) break;
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(host["criu"].is_object()) << host.dump();
  EXPECT_EQ(host["criu"]["works"], true) << host.dump();
  EXPECT_EQ(w.workspace(token)["criu"], true);
  auto metrics = http_request(w.daemon->port(), "GET", "/metrics");
  EXPECT_THAT(metrics.body, HasSubstr("feuille_checkpoint_works{host=\"local\"} 1"));
}

TEST(CheckpointProbe, CriuOffIsNeverTried) {
  WorkspaceDaemon w({"--runtime-user", "0", "--criu", "off"});
  auto token = w.login("bea");
  nlohmann::json doc;
  for (int i = 0; i < 100; ++i) {
    doc = nlohmann::json::parse(http_request(w.daemon->port(), "GET", "/readyz").body)["checks"]["host:local"];
    if (doc.contains("criu") && !doc["criu"].is_null()) break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(doc["criu"]["works"], false);
  EXPECT_EQ(doc["criu"]["detail"], "criu = off");
  EXPECT_EQ(w.workspace(token)["criu"], false);
}
