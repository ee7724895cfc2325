#include "http/router.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <stdexcept>

namespace feuille::http {
namespace {

std::vector<Route::Segment> compile(const std::string& pattern) {
  if (pattern.empty() || pattern.front() != '/') throw std::invalid_argument("route must start with /: " + pattern);
  std::vector<Route::Segment> out;
  std::string_view rest = std::string_view(pattern).substr(1);
  for (;;) {
    auto slash = rest.find('/');
    std::string_view seg = rest.substr(0, slash);
    Route::Segment s{Route::Segment::literal, std::string(seg), ""};
    auto open = seg.find('{');
    if (open != std::string_view::npos) {
      if (seg.back() != '}') throw std::invalid_argument("bad route segment: " + pattern);
      std::string name(seg.substr(open + 1, seg.size() - open - 2));
      if (!name.empty() && name.back() == '*') {
        if (slash != std::string_view::npos || open != 0) throw std::invalid_argument("{rest*} must end the route: " + pattern);
        name.pop_back();
        s = {Route::Segment::rest, "", name};
      } else if (open == 0) {
        s = {Route::Segment::param, "", name};
      } else {
        s = {Route::Segment::prefixed, std::string(seg.substr(0, open)), name};
      }
    }
    out.push_back(std::move(s));
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  return out;
}

// Specificity of a match, segment by segment (higher is more specific).
struct Score {
  std::array<std::uint8_t, 16> v{};
  std::size_t n = 0;
  void push(std::uint8_t x) {
    if (n < v.size()) v[n++] = x;
  }
  bool operator>(const Score& o) const {
    return std::lexicographical_compare(o.v.begin(), o.v.begin() + o.n, v.begin(), v.begin() + n);
  }
};

// Matches path segments against a route; fills params and the score.
// Returns false when the path does not match. Never allocates.
bool match_path(const Route& r, std::string_view path, Params& params, Score& score) {
  params.clear();
  score = Score{};
  if (path.empty() || path.front() != '/') return false;
  std::size_t pos = 1;
  for (std::size_t i = 0; i < r.segments.size(); ++i) {
    const auto& s = r.segments[i];
    if (pos > path.size()) return false;  // no segment left
    if (s.kind == Route::Segment::rest) {
      params.add(s.name, path.substr(pos));
      score.push(0);
      return true;
    }
    auto slash = path.find('/', pos);
    std::string_view seg = path.substr(pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos);
    switch (s.kind) {
      case Route::Segment::literal:
        if (seg != s.text) return false;
        score.push(3);
        break;
      case Route::Segment::prefixed:
        if (seg.size() <= s.text.size() || seg.substr(0, s.text.size()) != s.text) return false;
        params.add(s.name, seg.substr(s.text.size()));
        score.push(2);
        break;
      case Route::Segment::param:
        if (seg.empty()) return false;
        params.add(s.name, seg);
        score.push(1);
        break;
      case Route::Segment::rest:
        break;
    }
    pos = slash == std::string_view::npos ? path.size() + 1 : slash + 1;
  }
  return pos == path.size() + 1;  // every segment consumed
}

bool method_ok(const Route& r, bh::verb m) {
  if (r.methods.empty()) return true;
  for (auto v : r.methods)
    if (v == m || (v == bh::verb::get && m == bh::verb::head)) return true;
  return false;
}

}  // namespace

Route& Router::insert(std::vector<bh::verb> methods, std::string pattern, std::string route_class,
                      bool redact_path) {
  auto r = std::make_unique<Route>();
  r->segments = compile(pattern);
  r->pattern = std::move(pattern);
  r->route_class = std::move(route_class);
  r->methods = std::move(methods);
  r->redact_path = redact_path;
  if (r->segments.front().kind == Route::Segment::literal) by_first_[r->segments.front().text].push_back(r.get());
  else others_.push_back(r.get());
  routes_.push_back(std::move(r));
  return *routes_.back();
}

void Router::add(std::vector<bh::verb> methods, std::string pattern, std::string route_class, Handler h,
                 bool redact_path) {
  insert(std::move(methods), std::move(pattern), std::move(route_class), redact_path).handler = std::move(h);
}

void Router::add_stream(std::vector<bh::verb> methods, std::string pattern, std::string route_class,
                        StreamHandler h, bool redact_path) {
  insert(std::move(methods), std::move(pattern), std::move(route_class), redact_path).stream_handler =
      std::move(h);
}

RouteMatch Router::match(bh::verb method, std::string_view path) const {
  RouteMatch best;
  Score best_score, score;
  Params params;
  bool any_path_match = false;
  auto consider = [&](const Route* r) {
    if (!match_path(*r, path, params, score)) return;
    if (!method_ok(*r, method)) {
      any_path_match = true;
      return;
    }
    if (!best.route || score > best_score) {
      best.route = r;
      best.params = params;
      best_score = score;
    }
  };
  std::string_view first = path.empty() ? path : path.substr(1, path.find('/', 1) - 1);
  if (auto it = by_first_.find(first); it != by_first_.end())
    for (const Route* r : it->second) consider(r);
  for (const Route* r : others_) consider(r);
  if (!best.route && any_path_match) {
    // Rare path: collect the methods the matching routes allow.
    std::vector<bh::verb> allowed;
    for (const auto& r : routes_)
      if (match_path(*r, path, params, score))
        for (auto v : r->methods) allowed.push_back(v);
    best.method_not_allowed = true;
    std::sort(allowed.begin(), allowed.end());
    allowed.erase(std::unique(allowed.begin(), allowed.end()), allowed.end());
    for (auto v : allowed) {
      if (!best.allow.empty()) best.allow += ", ";
      best.allow += std::string(bh::to_string(v));
      if (v == bh::verb::get) best.allow += ", HEAD";
    }
  }
  return best;
}

}  // namespace feuille::http
