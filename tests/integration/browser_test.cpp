// The browser test (tests/e2e/workspace.mjs): Debian's Chromium, driven by
// playwright-core, signs in to the real feuilled, follows the redirect to
// the workspace's own origin ({id}.ws.localhost), waits for the starting
// page to become the editor, exchanges a WebSocket message with it, and
// checks that a script on the workspace origin cannot read feuilled's
// /api/me, and that a feuille_ws cookie tossed from a sibling origin (another
// workspace's script) does not lock the victim out. The steps and their
// bounds are in the script.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "support/workspace_daemon.hpp"

using namespace feuille::test;
using namespace std::chrono_literals;

TEST(Browser, AWorkspaceOnItsOwnOriginEndToEnd) {
  const std::string dir = std::string(FEUILLE_SOURCE_DIR) + "/tests/e2e";
  ASSERT_TRUE(std::filesystem::exists(dir + "/node_modules/playwright-core"))
      << "playwright-core is not installed: run `npm ci --prefix tests/e2e` (scripts/test does)";
  WorkspaceDaemon w;
  // The stand-in editor answers its pages with JSON that names its role.
  Process browser({"/usr/bin/node", dir + "/workspace.mjs", "--public-url", w.origin(), "--handle", "alice",
                   "--editor-text", "\"role\":\"editor\""});
  auto status = browser.wait(90s);
  EXPECT_EQ(status, std::optional<int>(0)) << browser.stdout_text() << browser.stderr_text();
  EXPECT_THAT(browser.stdout_text(), ::testing::HasSubstr("PASS"));
  // Every step ran, the tossed cookie's included.
  EXPECT_THAT(browser.stdout_text(), ::testing::HasSubstr("ok   e. a cookie tossed by another workspace"));
}
