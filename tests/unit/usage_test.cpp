// The monitor's arithmetic on Podman-shaped stats entries (as GET
// /libpod/containers/stats?stream=false answers them) and the idle policy
// on given times: no Podman, no clock, no loop.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "compute/usage.hpp"

using namespace feuille;
using namespace feuille::compute;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

json entry(const std::string& id, std::uint64_t cpu_nano, std::uint64_t system_nano, std::uint64_t mem = 64 << 20) {
  return {{"ContainerID", id},       {"Name", "feuille-rt-x"},  {"CPUNano", cpu_nano}, {"SystemNano", system_nano},
          {"MemUsage", mem},         {"MemLimit", 256 << 20},   {"CPU", 3.7},          {"AvgCPU", 3.7}};
}

constexpr std::uint64_t kSecond = 1'000'000'000;

}  // namespace

TEST(Usage, CpuIsTheChangeSinceTheLastSampleOverTheWallTimeBetween) {
  Usage u;
  fold_sample(u, entry("a", 5 * kSecond, 1000 * kSecond));
  EXPECT_TRUE(u.sampled);
  EXPECT_FALSE(u.cpu_percent) << "one sample says nothing of now (Podman's CPU is a lifetime average)";
  EXPECT_EQ(u.memory_bytes, 64u << 20);
  EXPECT_EQ(u.memory_limit_bytes, 256u << 20);
  // 0.25 s of CPU over 5 s of wall time: 5 %.
  fold_sample(u, entry("a", 5 * kSecond + kSecond / 4, 1005 * kSecond, 80 << 20));
  ASSERT_TRUE(u.cpu_percent);
  EXPECT_DOUBLE_EQ(*u.cpu_percent, 5.0);
  EXPECT_EQ(u.memory_bytes, 80u << 20);
  // Two CPUs busy for the whole interval: 200 % (of one CPU).
  fold_sample(u, entry("a", 5 * kSecond + kSecond / 4 + 2 * kSecond, 1006 * kSecond));
  EXPECT_DOUBLE_EQ(*u.cpu_percent, 200.0);
  // Rounded to 0.1: 1 ms of CPU over 3 s.
  fold_sample(u, entry("a", 5 * kSecond + kSecond / 4 + 2 * kSecond + kSecond / 1000, 1009 * kSecond));
  EXPECT_DOUBLE_EQ(*u.cpu_percent, 0.0);
  fold_sample(u, entry("a", 5 * kSecond + kSecond / 4 + 2 * kSecond + kSecond / 1000 + kSecond / 100, 1010 * kSecond));
  EXPECT_DOUBLE_EQ(*u.cpu_percent, 1.0);
}

TEST(Usage, ANewContainerOrCountersGoingBackStartTheBaselineAgain) {
  Usage u;
  fold_sample(u, entry("a", 50 * kSecond, 1000 * kSecond));
  fold_sample(u, entry("a", 51 * kSecond, 1010 * kSecond));
  EXPECT_DOUBLE_EQ(*u.cpu_percent, 10.0);
  // A restore (or a restart) is a new container id with counters from 0.
  fold_sample(u, entry("b", kSecond / 10, 1020 * kSecond));
  EXPECT_FALSE(u.cpu_percent);
  EXPECT_EQ(u.container_id, "b");
  fold_sample(u, entry("b", kSecond / 10 + kSecond, 1030 * kSecond));
  EXPECT_DOUBLE_EQ(*u.cpu_percent, 10.0);
  // The same wall time twice, or CPU going backwards: no figure, no division by zero.
  fold_sample(u, entry("b", 2 * kSecond, 1030 * kSecond));
  EXPECT_FALSE(u.cpu_percent);
  fold_sample(u, entry("b", kSecond, 1040 * kSecond));
  EXPECT_FALSE(u.cpu_percent);
  // An entry without the fields (a container Podman has no figures for).
  Usage empty;
  fold_sample(empty, json::object());
  fold_sample(empty, json::object());
  EXPECT_FALSE(empty.cpu_percent);
  EXPECT_EQ(empty.memory_bytes, 0u);
}

TEST(IdlePolicy, QuietForTheTimeoutUnderTheThresholdSleeps) {
  const auto t0 = std::chrono::system_clock::time_point{} + 1000h;
  IdleInputs in;
  in.timeout = Duration{15 * 60'000};
  in.cpu_threshold = 1;
  in.runtime_cpu = 0.3;
  in.last_activity = t0;
  in.now = t0 + 14min + 59s;
  EXPECT_EQ(idle_verdict(in), IdleVerdict::awake);
  in.now = t0 + 15min;
  EXPECT_EQ(idle_verdict(in), IdleVerdict::sleep);
  in.now = t0 + 3h;
  EXPECT_EQ(idle_verdict(in), IdleVerdict::sleep);
}

TEST(IdlePolicy, ComputingOrTalkingToTheRuntimeIsActivity) {
  const auto t0 = std::chrono::system_clock::time_point{} + 1000h;
  IdleInputs in;
  in.timeout = Duration{60'000};
  in.cpu_threshold = 1;
  in.last_activity = t0;
  in.now = t0 + 2h;
  in.runtime_cpu = 1.0;  // at the threshold: busy
  EXPECT_EQ(idle_verdict(in), IdleVerdict::active);
  in.runtime_cpu = 0.9;
  EXPECT_EQ(idle_verdict(in), IdleVerdict::sleep);
  in.gateway_moved = true;  // bytes through the gateway, whatever the CPU
  EXPECT_EQ(idle_verdict(in), IdleVerdict::active);
  in.gateway_moved = false;
  in.runtime_cpu.reset();  // not two samples yet: nothing is decided
  EXPECT_EQ(idle_verdict(in), IdleVerdict::awake);
}

TEST(IdlePolicy, ATimeoutOfZeroNeverSleeps) {
  IdleInputs in;
  in.timeout = Duration{0};
  in.runtime_cpu = 0;
  in.now = in.last_activity + 10000h;
  EXPECT_EQ(idle_verdict(in), IdleVerdict::awake);
}
