// mrmd.md configuration: the ```yaml config blocks, merged in order.
#include <gtest/gtest.h>

#include "publish/project_config.hpp"

using namespace feuille::publish;

namespace {

std::string block(const std::string& yaml) { return "```yaml config\n" + yaml + "```\n"; }

}  // namespace

TEST(PublishConfig, FindsOnlyConfigBlocks) {
  std::string md =
      "# My project\n\n"
      "```yaml\nname: not config\n```\n"
      "```python config\nx = 1\n```\n"
      "````markdown\n```yaml config\nname: inside another fence\n```\n````\n"
      "```yaml config\nname: first\n```\n"
      "Text `` ```yaml config `` inline.\n"
      "~~~ yaml   config  extra\ndescription: tilde\n~~~\n"
      "    ```yaml config\n    name: indented code\n    ```\n";
  auto blocks = config_blocks(md);
  ASSERT_EQ(blocks.size(), 2u);
  EXPECT_EQ(blocks[0], "name: first\n");
  EXPECT_EQ(blocks[1], "description: tilde\n");
}

TEST(PublishConfig, UnclosedFenceRunsToTheEnd) {
  auto blocks = config_blocks("```yaml config\nname: x\r\npublish:\r\n  visibility: public\r\n");
  ASSERT_EQ(blocks.size(), 1u);
  auto r = parse_project_config("```yaml config\nname: x\r\npublish:\r\n  visibility: public\r\n");
  ASSERT_TRUE(r.config) << r.error;
  EXPECT_EQ(r.config->visibility, Visibility::public_);
}

TEST(PublishConfig, ReadsTheKeys) {
  auto r = parse_project_config(block(
      "name: Data notes\ndescription: Cleaning and modelling\npublish:\n  visibility: Public\n"
      "nav:\n  order: [intro.md, analysis/results, 3]\n"));
  ASSERT_TRUE(r.config) << r.error;
  EXPECT_EQ(r.config->name, "Data notes");
  EXPECT_EQ(r.config->description, "Cleaning and modelling");
  EXPECT_EQ(r.config->visibility, Visibility::public_);
  EXPECT_EQ(r.config->nav_order, (std::vector<std::string>{"intro.md", "analysis/results", "3"}));
  EXPECT_TRUE(r.warnings.empty());
}

TEST(PublishConfig, VisibilityDefaultsToPrivate) {
  EXPECT_EQ(parse_project_config("# nothing\n").config->visibility, Visibility::private_);
  EXPECT_EQ(parse_project_config(block("name: x\n")).config->visibility, Visibility::private_);
  EXPECT_EQ(parse_project_config(block("publish:\n  visibility: unlisted\n")).config->visibility,
            Visibility::unlisted);
  auto odd = parse_project_config(block("publish:\n  visibility: everyone\n"));
  EXPECT_EQ(odd.config->visibility, Visibility::private_);
  EXPECT_EQ(odd.warnings.size(), 1u);
  EXPECT_EQ(parse_project_config(block("publish: public\n")).config->visibility, Visibility::private_);
}

TEST(PublishConfig, DeepMergeLaterWinsListsReplace) {
  auto r = parse_project_config(
      block("name: first\npublish:\n  visibility: private\n  extra: kept\nnav:\n  order: [a, b, c]\n") +
      "Some prose.\n\n" + block("publish:\n  visibility: public\nnav:\n  order: [z]\n") + block("") +
      block("name: last\n"));
  ASSERT_TRUE(r.config) << r.error;
  EXPECT_EQ(r.config->name, "last");
  EXPECT_EQ(r.config->visibility, Visibility::public_);
  EXPECT_EQ(r.config->values["publish"]["extra"], "kept");
  EXPECT_EQ(r.config->nav_order, std::vector<std::string>{"z"});
}

TEST(PublishConfig, AMapReplacesAScalarAndBack) {
  auto r = parse_project_config(block("publish: yes\n") + block("publish:\n  visibility: public\n"));
  EXPECT_EQ(r.config->visibility, Visibility::public_);
  r = parse_project_config(block("publish:\n  visibility: public\n") + block("publish: no\n"));
  EXPECT_EQ(r.config->visibility, Visibility::private_);
}

TEST(PublishConfig, BadInputUnpublishesWithAReason) {
  auto bad = parse_project_config(block("publish:\n  visibility: public\n") + block("name: [unclosed\n"));
  EXPECT_FALSE(bad.config);
  EXPECT_NE(bad.error.find("yaml config block 2"), std::string::npos) << bad.error;

  auto list = parse_project_config(block("- a\n- b\n"));
  EXPECT_FALSE(list.config);
  EXPECT_NE(list.error.find("not a mapping"), std::string::npos);

  std::string big = block("publish:\n  visibility: public\n") + std::string(64 * 1024, 'x');
  auto large = parse_project_config(big);
  EXPECT_FALSE(large.config);
  EXPECT_NE(large.error.find("64 KiB"), std::string::npos);
}

TEST(PublishConfig, DepthIsBounded) {
  auto nested = [](int depth) {
    std::string yaml;
    for (int i = 0; i < depth; ++i) yaml += std::string(2 * i, ' ') + "k:\n";
    yaml += std::string(2 * depth, ' ') + "leaf\n";
    return block(yaml);
  };
  EXPECT_TRUE(parse_project_config(nested(32)).config);
  auto deep = parse_project_config(nested(33));
  EXPECT_FALSE(deep.config);
  EXPECT_NE(deep.error.find("deeper than 32"), std::string::npos) << deep.error;
  // Flow style, far deeper than any sane config.
  auto flow = parse_project_config(block("x: " + std::string(5000, '[') + std::string(5000, ']') + "\n"));
  EXPECT_FALSE(flow.config);
}

TEST(PublishConfig, AliasBombsAreBounded) {
  std::string yaml = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  char prev = 'a';
  for (char c = 'b'; c <= 'k'; ++c, ++prev) {
    yaml += std::string(1, c) + ": &" + c + " [";
    for (int i = 0; i < 10; ++i) yaml += std::string(i ? ", " : "") + "*" + prev;
    yaml += "]\n";
  }
  auto r = parse_project_config(block(yaml));
  EXPECT_FALSE(r.config);
  EXPECT_NE(r.error.find("values"), std::string::npos) << r.error;
}

TEST(PublishConfig, InvalidUtf8IsReplaced) {
  auto r = parse_project_config(block("name: \"caf\xE9\"\n"));
  if (r.config) {
    EXPECT_EQ(r.config->values.dump().find('\xE9'), std::string::npos);
  }
}
