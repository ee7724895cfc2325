#include "publish/project.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>

#include "publish/markdown.hpp"

namespace feuille::publish {
namespace {

bool hidden(std::string_view name) { return name.empty() || name.front() == '.' || name.front() == '_'; }

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

bool has_md_suffix(std::string_view name) { return name.size() > 3 && iequals(name.substr(name.size() - 3), ".md"); }

// A name that a URL can address (decode_segment accepts its encoding).
bool addressable(const std::string& name) { return decode_segment(encode_segment(name)).has_value(); }

int compare_icase(std::string_view a, std::string_view b) {
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
    char x = lower(a[i]), y = lower(b[i]);
    if (x != y) return x < y ? -1 : 1;
  }
  if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
  return a.compare(b) < 0 ? -1 : (a.compare(b) > 0 ? 1 : 0);
}

// Numeric comparison of digit strings of any length.
int compare_numbers(std::string_view a, std::string_view b) {
  while (a.size() > 1 && a.front() == '0') a.remove_prefix(1);
  while (b.size() > 1 && b.front() == '0') b.remove_prefix(1);
  if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
  return a.compare(b) < 0 ? -1 : (a.compare(b) > 0 ? 1 : 0);
}

bool name_order(const Name& na, std::string_view a, const Name& nb, std::string_view b) {
  if (na.number && nb.number) {
    if (int c = compare_numbers(*na.number, *nb.number)) return c < 0;
  } else if (na.number || nb.number) {
    return na.number.has_value();
  }
  if (int c = compare_icase(na.stem, nb.stem)) return c < 0;
  return a < b;
}

// One scanned file or folder.
struct Entry {
  std::string name;  // as on disk
  std::string rel;   // below the project folder
  Name parsed;
  bool folder = false;
  std::string heading;  // files: their first heading
  std::vector<Entry> children;
  bool link = false;
  int rank = INT_MAX;                 // nav.order position (INT_MAX: not listed)
};

struct Walker {
  int project_dir;
  Project& project;
  const std::function<void(int)>& on_folder;
  std::size_t entries = 0;
  bool truncated = false;

  void walk(int dir, const std::string& prefix, int depth, std::vector<Entry>& out) {
    DIR* d = ::fdopendir(::dup(dir));
    if (!d) return;
    while (dirent* de = ::readdir(d)) {
      std::string name = de->d_name;
      if (hidden(name) || name == "." || name == "..") continue;
      if (prefix.empty() && name == "mrmd.md") continue;
      if (++entries > kMaxEntries) {
        truncated = true;
        break;
      }
      if (!addressable(name)) continue;  // control bytes, invalid UTF-8...: no URL can reach it
      unsigned char type = de->d_type;
      if (type == DT_UNKNOWN) {
        struct stat st {};
        if (::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        type = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : S_ISLNK(st.st_mode) ? DT_LNK : DT_UNKNOWN;
      }
      std::string rel = prefix.empty() ? name : prefix + "/" + name;
      if (type == DT_DIR) {
        if (depth >= kMaxFolderDepth) {
          truncated = true;
          continue;
        }
        Fd sub(::openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!sub) continue;
        struct stat st {};
        if (::fstat(sub.get(), &st) != 0) continue;
        Entry e{name, rel, parse_name(name, false), true, {}, {}, false, INT_MAX};
        project.folders.emplace_back(rel, Stamp::of(st));
        if (on_folder) on_folder(sub.get());
        walk(sub.get(), rel, depth + 1, e.children);
        out.push_back(std::move(e));
      } else if ((type == DT_REG || type == DT_LNK) && has_md_suffix(name)) {
        // Read through the project folder: a symlink leaving it fails here.
        auto head = read_beneath(project_dir, rel, kTitleScanBytes);
        if (!head) continue;
        Entry e{name, rel, parse_name(name, true), false, first_heading(*head), {}, type == DT_LNK, INT_MAX};
        out.push_back(std::move(e));
      }
    }
    ::closedir(d);
  }
};

void sort_entries(std::vector<Entry>& v) {
  std::sort(v.begin(), v.end(),
            [](const Entry& a, const Entry& b) { return name_order(a.parsed, a.name, b.parsed, b.name); });
  for (auto& e : v)
    if (e.folder) sort_entries(e.children);
}

// Drops folders without any page (after their own empty subfolders).
void prune_empty(std::vector<Entry>& v) {
  for (auto& e : v)
    if (e.folder) prune_empty(e.children);
  std::erase_if(v, [](const Entry& e) { return e.folder && e.children.empty(); });
}

// The folder's index page: its first "index" file in the current order.
std::optional<std::size_t> index_of(const std::vector<Entry>& v) {
  for (std::size_t i = 0; i < v.size(); ++i)
    if (!v[i].folder && iequals(v[i].parsed.stem, "index")) return i;
  return std::nullopt;
}

std::string normalize_order_entry(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  for (;;) {
    if (s.substr(0, 2) == "./") s.remove_prefix(2);
    else if (!s.empty() && s.front() == '/') s.remove_prefix(1);
    else break;
  }
  while (!s.empty() && s.back() == '/') s.remove_suffix(1);
  return std::string(s);
}

// Ranks entries by their position in nav.order (a folder ranks as its
// best-ranked descendant), then sorts ranked siblings first.
int apply_order(std::vector<Entry>& v, const std::unordered_map<std::string, int>& rank_of,
                const std::string& url_prefix) {
  int best = INT_MAX;
  for (auto& e : v) {
    std::string url = url_prefix.empty() ? e.parsed.stem : url_prefix + "/" + e.parsed.stem;
    auto rank_by = [&](const std::string& key) {
      if (auto it = rank_of.find(key); it != rank_of.end()) e.rank = std::min(e.rank, it->second);
    };
    rank_by(e.rel);
    rank_by(url);
    if (!e.folder && has_md_suffix(e.rel)) rank_by(e.rel.substr(0, e.rel.size() - 3));
    if (e.folder) e.rank = std::min(e.rank, apply_order(e.children, rank_of, url));
    best = std::min(best, e.rank);
  }
  std::stable_sort(v.begin(), v.end(), [](const Entry& a, const Entry& b) { return a.rank < b.rank; });
  return best;
}

struct Builder {
  Project& p;

  int add_page(const std::string& url, const Entry& e, bool index = false) {
    if (p.by_url.count(url)) {
      p.warnings.push_back("\"" + e.rel + "\" maps to the same URL as \"" + p.pages[p.by_url[url]].file +
                           "\", which comes first; it is left out");
      return -1;
    }
    std::string title = e.heading.empty() ? title_case(e.parsed.stem) : e.heading;
    p.pages.push_back(Page{url, e.rel, std::move(title), e.heading, index, e.link});
    p.by_url[url] = p.pages.size() - 1;
    p.by_file[e.rel] = p.pages.size() - 1;
    return static_cast<int>(p.pages.size() - 1);
  }

  void build(const std::vector<Entry>& v, const std::string& url_prefix, std::optional<std::size_t> skip,
             std::vector<NavItem>& out) {
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (skip && *skip == i) continue;
      const Entry& e = v[i];
      std::string url = url_prefix.empty() ? e.parsed.stem : url_prefix + "/" + e.parsed.stem;
      if (!e.folder && iequals(e.parsed.stem, "index")) {
        // A second index of the same folder maps to the folder's URL too.
        if (skip) p.warnings.push_back("\"" + e.rel + "\" maps to the same URL as \"" + v[*skip].rel +
                                       "\", which comes first; it is left out");
        continue;
      }
      if (!e.folder) {
        int idx = add_page(url, e);
        if (idx >= 0) out.push_back(NavItem{p.pages[idx].title, idx, {}});
        continue;
      }
      NavItem item;
      auto index = index_of(e.children);
      if (index) {
        item.page = add_page(url, e.children[*index], true);
        if (item.page >= 0) p.by_file[e.rel] = static_cast<std::size_t>(item.page);
      }
      build(e.children, url, index, item.children);
      item.title = item.page >= 0 ? p.pages[item.page].title : title_case(e.parsed.stem);
      if (item.page >= 0 || !item.children.empty()) out.push_back(std::move(item));
    }
  }
};

}  // namespace

Stamp Stamp::of(const struct stat& st) {
  return Stamp{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino),
               static_cast<std::int64_t>(st.st_size),
               static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
}

Stamp stamp_at(int dir, const char* rel, bool follow) {
  struct stat st {};
  int rc = rel[0] == '.' && rel[1] == '\0' ? ::fstat(dir, &st)
                                           : ::fstatat(dir, rel, &st, follow ? 0 : AT_SYMLINK_NOFOLLOW);
  return rc == 0 ? Stamp::of(st) : Stamp{};
}

bool Project::served() const { return config && config->visibility != Visibility::private_; }
bool Project::listed() const { return config && config->visibility == Visibility::public_; }

std::string Project::title() const { return config && !config->name.empty() ? config->name : folder; }

int Project::home() const {
  if (auto it = by_url.find(""); it != by_url.end()) return static_cast<int>(it->second);
  return pages.empty() ? -1 : 0;
}

bool Project::fresh(int project_dir) const {
  if (stamp_at(project_dir, "mrmd.md", true) != config_stamp) return false;
  for (const auto& [rel, stamp] : folders)
    if (stamp_at(project_dir, rel.c_str(), false) != stamp) return false;
  return true;
}

Fd open_user_dir(const std::string& data_dir, const std::string& user_id) {
  if (user_id.empty() || user_id.find_first_not_of("0123456789abcdefABCDEF-") != std::string::npos) return Fd{};
  return Fd(::open((data_dir + "/" + user_id).c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
}

Fd open_project_dir(int user_dir, const std::string& name) {
  if (hidden(name) || !addressable(name)) return Fd{};
  return open_beneath(user_dir, "Projects/" + name, O_RDONLY | O_DIRECTORY, Symlinks::never);
}

std::optional<std::string> read_beneath(int dir, const std::string& rel, std::size_t limit, Stamp* stamp,
                                        bool* truncated) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below.
  Fd f = open_beneath(dir, rel, O_RDONLY | O_NONBLOCK | O_NOCTTY);
  if (!f) return std::nullopt;
  struct stat st {};
  if (::fstat(f.get(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  if (stamp) *stamp = Stamp::of(st);
  std::string out;
  std::size_t want = std::min<std::size_t>(limit, static_cast<std::size_t>(st.st_size));
  out.resize(want);
  std::size_t got = 0;
  while (got < want) {
    ssize_t n = ::read(f.get(), out.data() + got, want - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::nullopt;
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  out.resize(got);
  if (truncated) *truncated = static_cast<std::size_t>(st.st_size) > limit;
  return out;
}

Project scan_project(int project_dir, std::string folder, const std::function<void(int dir_fd)>& on_folder) {
  Project p;
  p.folder = std::move(folder);
  p.folders.emplace_back(".", stamp_at(project_dir, ".", false));
  p.config_stamp = stamp_at(project_dir, "mrmd.md", true);
  if (on_folder) on_folder(project_dir);
  bool truncated = false;
  auto text = read_beneath(project_dir, "mrmd.md", kMaxConfigBytes, nullptr, &truncated);
  if (!text) {
    p.problem = "no readable mrmd.md";
    return p;
  }
  if (truncated) {
    p.problem = "mrmd.md is larger than 64 KiB";
    return p;
  }
  auto parsed = parse_project_config(*text);
  p.warnings = std::move(parsed.warnings);
  if (!parsed.config) {
    p.problem = "mrmd.md: " + parsed.error;
    return p;
  }
  p.config = std::move(parsed.config);
  if (!p.served()) return p;  // nothing else to know about a private project

  Walker walker{project_dir, p, on_folder};
  std::vector<Entry> root;
  walker.walk(project_dir, "", 0, root);
  if (walker.truncated)
    p.warnings.push_back("more than " + std::to_string(kMaxEntries) + " entries or " +
                         std::to_string(kMaxFolderDepth) + " folder levels; the rest is left out");
  sort_entries(root);
  prune_empty(root);
  if (!p.config->nav_order.empty()) {
    std::unordered_map<std::string, int> rank_of;
    for (std::size_t i = 0; i < p.config->nav_order.size(); ++i) {
      std::string key = normalize_order_entry(p.config->nav_order[i]);
      if (!key.empty()) rank_of.emplace(key, static_cast<int>(i));
    }
    apply_order(root, rank_of, "");
  }
  // The root index comes first wherever it sorts: it stands for the project.
  auto root_index = index_of(root);
  Builder b{p};
  if (root_index) {
    int idx = b.add_page("", root[*root_index], true);
    if (idx >= 0) p.nav.push_back(NavItem{p.pages[idx].title, idx, {}});
  }
  b.build(root, "", root_index, p.nav);
  return p;
}

std::vector<ProjectSummary> list_projects(int user_dir) {
  std::vector<ProjectSummary> out;
  Fd projects = open_beneath(user_dir, "Projects", O_RDONLY | O_DIRECTORY, Symlinks::never);
  if (!projects) return out;
  DIR* d = ::fdopendir(projects.release());
  if (!d) return out;
  std::vector<std::string> names;
  while (dirent* de = ::readdir(d)) {
    std::string name = de->d_name;
    if (hidden(name) || !addressable(name)) continue;
    if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN) continue;
    names.push_back(std::move(name));
    if (names.size() >= 10'000) break;
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  for (auto& name : names) {
    Fd dir = open_project_dir(user_dir, name);
    if (!dir) continue;
    bool truncated = false;
    auto text = read_beneath(dir.get(), "mrmd.md", kMaxConfigBytes, nullptr, &truncated);
    if (!text) continue;  // not a project
    ProjectSummary s{name, std::nullopt, ""};
    if (truncated) {
      s.problem = "mrmd.md is larger than 64 KiB";
    } else {
      auto parsed = parse_project_config(*text);
      s.config = std::move(parsed.config);
      s.problem = std::move(parsed.error);
    }
    out.push_back(std::move(s));
  }
  return out;
}

Name parse_name(std::string_view filename, bool is_file) {
  std::string_view base = filename;
  if (is_file && has_md_suffix(base)) base.remove_suffix(3);
  Name n;
  std::size_t digits = 0;
  while (digits < base.size() && base[digits] >= '0' && base[digits] <= '9') ++digits;
  if (digits > 0 && digits < base.size() && (base[digits] == '-' || base[digits] == '_')) {
    n.number = std::string(base.substr(0, digits));
    n.stem = std::string(base.substr(digits + 1));
  }
  if (n.stem.empty()) n.stem = std::string(base);  // "01-.md": nothing after the prefix
  return n;
}

std::string title_case(std::string_view stem) {
  std::string out;
  bool start = true;
  for (char c : stem) {
    if (c == '-' || c == '_' || c == ' ') {
      if (!out.empty() && out.back() != ' ') out.push_back(' ');
      start = true;
      continue;
    }
    out.push_back(start && c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c);
    start = false;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out.empty() ? std::string(stem) : out;
}

std::string first_heading(std::string_view md) {
  md = strip_front_matter(md);
  bool in_fence = false;
  char fence_char = 0;
  std::size_t fence_len = 0;
  while (!md.empty()) {
    auto nl = md.find('\n');
    std::string_view line = md.substr(0, nl);
    md.remove_prefix(nl == std::string_view::npos ? md.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    std::size_t indent = 0;
    while (indent < line.size() && line[indent] == ' ') ++indent;
    if (indent > 3 || indent >= line.size()) continue;
    char c = line[indent];
    if (c == '`' || c == '~') {
      std::size_t n = 0;
      while (indent + n < line.size() && line[indent + n] == c) ++n;
      if (n >= 3) {
        if (!in_fence) {
          if (c == '`' && line.substr(indent + n).find('`') != std::string_view::npos) continue;
          in_fence = true;
          fence_char = c;
          fence_len = n;
        } else if (c == fence_char && n >= fence_len &&
                   line.substr(indent + n).find_first_not_of(" \t") == std::string_view::npos) {
          in_fence = false;
        }
        continue;
      }
    }
    if (in_fence || c != '#') continue;
    std::string_view rest = line.substr(indent + 1);
    if (!rest.empty() && rest.front() != ' ' && rest.front() != '\t') continue;  // "##..." or "#tag"
    // The optional closing sequence: blanks, then #s preceded by a blank.
    while (!rest.empty() && (rest.back() == ' ' || rest.back() == '\t')) rest.remove_suffix(1);
    std::size_t hashes = 0;
    while (hashes < rest.size() && rest[rest.size() - 1 - hashes] == '#') ++hashes;
    if (hashes == rest.size()) rest = {};
    else if (hashes > 0 && (rest[rest.size() - 1 - hashes] == ' ' || rest[rest.size() - 1 - hashes] == '\t'))
      rest.remove_suffix(hashes);
    std::string text = heading_text(rest);
    if (!text.empty()) return text;
  }
  return "";
}

bool default_order(std::string_view a, std::string_view b) {
  return name_order(parse_name(a, true), a, parse_name(b, true), b);
}

}  // namespace feuille::publish
