#pragma once
// The project model: which folders under <data-dir>/<user id>/Projects/ are
// projects, their config (mrmd.md), their pages in reading order, the nav
// tree, titles, and the stamps that tell when any of it changed. Blocking
// file-system code without Asio: the publish routes call it on the thread
// pool, and the dashboard can reuse it.
//
// Rules (SPEC.md section 5): pages are .md files; names starting with '_'
// or '.' are hidden; mrmd.md is not a page; numbered names (^\d+[-_]) come
// first in numeric order, then the others alphabetically, folders and files
// interleaved; nav.order overrides; a folder's index(.md) stands for the
// folder; the URL name drops the number prefix and ".md"; when two files map
// to one URL the first in order wins; title = first "# heading", else the
// name in Title Case. Symlinked folders are not entered; symlinked pages are
// kept only when they resolve inside the project.
#include <sys/stat.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "publish/path.hpp"
#include "publish/project_config.hpp"

namespace feuille::publish {

// What identifies a version of a file or folder: a save always changes it
// (even two saves of one size within a second: nanosecond mtime; a
// replace-by-rename changes the inode).
struct Stamp {
  std::uint64_t dev = 0;
  std::uint64_t ino = 0;
  std::int64_t size = -1;  // -1: absent
  std::int64_t mtime_ns = 0;
  bool exists() const { return size >= 0; }
  bool operator==(const Stamp&) const = default;
  static Stamp of(const struct stat& st);
};

// Stamp of `rel` below the directory `dir` ("." = dir itself). With
// `follow`, of what a symlink points to (metadata only: contents are always
// read through open_beneath). Absent (or unreadable) gives an absent stamp.
Stamp stamp_at(int dir, const char* rel, bool follow);

struct Page {
  std::string url;    // relative URL path: "" for the project's own index, "analysis/results"
  std::string file;   // path below the project folder: "02-analysis/01-results.md"
  std::string title;
  std::string heading;  // the first "# heading" found when scanning ("" = title from the name)
  bool index = false;   // a folder's index page (its URL is the folder's)
  bool link = false;    // the file is a symlink (to a file inside the project)
};

struct NavItem {
  std::string title;
  int page = -1;  // index in Project::pages; -1 for a folder without index
  std::vector<NavItem> children;
};

struct Project {
  std::string folder;                   // its folder name under Projects/ (its URL name)
  std::optional<ProjectConfig> config;  // nullopt: not a usable project (see problem)
  std::string problem;                  // why it is not served, for the log
  std::vector<std::string> warnings;    // config oddities, URL collisions, limits hit
  std::vector<Page> pages;              // reading order (prev/next)
  std::vector<NavItem> nav;             // top-level items of the nav tree
  std::unordered_map<std::string, std::size_t> by_url;
  std::unordered_map<std::string, std::size_t> by_file;  // page files, and folders by their index
  // Freshness: mrmd.md and every folder that was scanned ("." first).
  Stamp config_stamp;
  std::vector<std::pair<std::string, Stamp>> folders;

  bool served() const;  // public or unlisted, and the config is usable
  bool listed() const;  // public
  std::string title() const;  // config name, else the folder name
  // The page the project root shows: its index, else the first page; -1 when none.
  int home() const;
  // True when mrmd.md and every folder still have the stamps of this scan.
  bool fresh(int project_dir) const;
};

// Limits of one scan (a project is a user's folder: bounded work per request).
inline constexpr int kMaxFolderDepth = 16;
inline constexpr std::size_t kMaxEntries = 20'000;      // directory entries looked at
inline constexpr std::size_t kTitleScanBytes = 64 * 1024;  // the title is looked for in this much

// The user's folder, <data-dir>/<user id> (a directory, not a symlink).
Fd open_user_dir(const std::string& data_dir, const std::string& user_id);
// Projects/<name> below the user's folder, as a directory. No symlink is
// followed on the way (a link could point into another user's folder).
Fd open_project_dir(int user_dir, const std::string& name);

// Reads mrmd.md and walks the folder. Never throws for what is on disk.
// `on_folder` is called with each folder it reads (the project's own first),
// open, after its stamp was taken and before its entries are read.
Project scan_project(int project_dir, std::string folder, const std::function<void(int dir_fd)>& on_folder = {});

// Reads at most `limit` bytes of `rel` below `dir` (symlinks only beneath);
// nullopt when it cannot be opened or is not a regular file. *stamp gets the
// opened file's stamp; *truncated says whether the file was longer.
std::optional<std::string> read_beneath(int dir, const std::string& rel, std::size_t limit, Stamp* stamp = nullptr,
                                        bool* truncated = nullptr);

struct ProjectSummary {
  std::string folder;
  std::optional<ProjectConfig> config;  // nullopt: no usable mrmd.md
  std::string problem;
};
// Every project of a user (folders of Projects/ holding mrmd.md), sorted by
// folder name; only mrmd.md is read.
std::vector<ProjectSummary> list_projects(int user_dir);

// Naming rules, exposed for tests and for the dashboard.
struct Name {
  std::optional<std::string> number;  // digits of the ^(\d+)[-_] prefix
  std::string stem;                   // the name without the prefix and ".md"
};
Name parse_name(std::string_view filename, bool is_file);
// "data-cleaning" -> "Data Cleaning".
std::string title_case(std::string_view stem);
// The text of the first level-1 ATX heading ("# Title") outside fenced code
// and front matter; "" when none.
std::string first_heading(std::string_view markdown);
// Default order of two sibling names (numbered first, by number; then the
// others alphabetically, case-insensitively).
bool default_order(std::string_view a, std::string_view b);

}  // namespace feuille::publish
