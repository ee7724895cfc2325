#pragma once
// feuilled's own CSS/JS, compiled into the binary (static/ in the source
// tree). Each file is served at /static/<stem>.<hash>.<ext> with a year-long
// immutable cache; the plain name is served too, with a short cache, for
// anything that cannot know the hash.
#include <string>
#include <string_view>
#include <unordered_map>

namespace feuille::http {

struct Asset {
  std::string_view data;
  std::string content_type;
  std::string etag;  // quoted
  bool immutable;    // requested by its hashed name
};

class StaticAssets {
 public:
  static const StaticAssets& instance();

  // "/static/feuille.3f2a9c1b0d4e.css" for "feuille.css"; throws when unknown.
  std::string url(std::string_view name) const;
  // Looks up a name under /static/ (hashed or plain).
  const Asset* find(std::string_view name) const;

 private:
  StaticAssets();
  std::unordered_map<std::string, Asset> by_name_;
  std::unordered_map<std::string, std::string> url_of_;
};

}  // namespace feuille::http
