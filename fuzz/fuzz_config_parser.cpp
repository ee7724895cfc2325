// libFuzzer target: the mrmd.md config parser (fenced ```yaml config blocks,
// yaml-cpp, deep merge, limits). Whatever the bytes: no crash, no escaping
// exception, bounded depth, and a result that serializes.
#include <cstdint>
#include <cstdio>
#include <string>

#include "publish/project_config.hpp"

using namespace feuille::publish;

namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "invariant broken: %s\n", what);
    __builtin_trap();
  }
}

int depth(const nlohmann::json& j) {
  if (!j.is_structured()) return 0;
  int d = 0;
  for (const auto& v : j) d = std::max(d, depth(v));
  return d + 1;
}

void check_result(const ConfigResult& r) {
  if (!r.config) {
    check(!r.error.empty(), "an unusable config without a reason");
    return;
  }
  const auto& c = *r.config;
  check(c.visibility == Visibility::private_ || c.visibility == Visibility::unlisted ||
            c.visibility == Visibility::public_,
        "visibility");
  check(c.values.is_object(), "merged config is a mapping");
  check(depth(c.values) <= kMaxConfigDepth, "depth bound");
  (void)c.values.dump();  // throws on invalid UTF-8
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string input(reinterpret_cast<const char*>(data), size);
  // As a whole mrmd.md (fences and all)...
  check_result(parse_project_config(input));
  // ...and as the YAML of one block, so the fuzzer reaches yaml-cpp quickly.
  check_result(parse_project_config("```yaml config\n" + input + "\n```\n"));
  return 0;
}
