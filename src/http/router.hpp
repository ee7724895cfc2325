#pragma once
// Method + path routing with parameters.
//
// Pattern segments: "literal", "{name}" (one segment), "@{name}" (a literal
// prefix then one segment's rest) and a final "{name*}" (the rest of the path,
// slashes included, possibly empty). The most specific match wins (literal >
// prefixed > parameter > rest, compared segment by segment), whatever the
// registration order. GET routes answer HEAD too.
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "http/types.hpp"

namespace feuille::http {

struct Route {
  std::string pattern;
  std::string route_class;  // metrics label: "health", "auth", "proxy", ...
  std::vector<bh::verb> methods;  // empty = any method
  Handler handler;                // exactly one of handler / stream_handler
  StreamHandler stream_handler;
  bool redact_path = false;  // log the pattern, not the path (tokens in paths)

  struct Segment {
    enum Kind { literal, prefixed, param, rest } kind;
    std::string text;  // literal text or prefix
    std::string name;
  };
  std::vector<Segment> segments;
};

struct RouteMatch {
  const Route* route = nullptr;  // null: not found or method not allowed
  Params params;
  bool method_not_allowed = false;
  std::string allow;  // for 405
};

class Router {
 public:
  void add(std::vector<bh::verb> methods, std::string pattern, std::string route_class, Handler h,
           bool redact_path = false);
  void add_stream(std::vector<bh::verb> methods, std::string pattern, std::string route_class,
                  StreamHandler h, bool redact_path = false);
  RouteMatch match(bh::verb method, std::string_view path) const;

 private:
  Route& insert(std::vector<bh::verb> methods, std::string pattern, std::string route_class,
                bool redact_path);
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::vector<std::unique_ptr<Route>> routes_;
  // Candidates by the path's first segment, for routes that start with a
  // literal; the others are tried for every path.
  std::unordered_map<std::string, std::vector<const Route*>, StringHash, std::equal_to<>> by_first_;
  std::vector<const Route*> others_;
};

}  // namespace feuille::http
