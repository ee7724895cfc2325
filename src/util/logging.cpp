#include "util/logging.hpp"

#include <unistd.h>

#include <chrono>
#include <ctime>
#include <mutex>

#include <spdlog/details/log_msg.h>
#include <spdlog/formatter.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

namespace feuille {
namespace {

// A JSON string literal of s appended to out (std::string or fmt's buffer).
template <class Out>
void append_json_string(Out& out, std::string_view s);

// Buffers formatted lines and writes them to stderr in large writes.
class BufferedStderrSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  // A pre-formatted message, prefixed here with a cached timestamp (the hot
  // path of the access log: spdlog's general pattern formatting cost more than
  // the rest of a small request).
  void append_line(bool json, std::string_view logger_name, std::string_view level, std::string_view msg) {
    auto now = std::chrono::system_clock::now();
    auto secs = std::chrono::time_point_cast<std::chrono::seconds>(now);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - secs).count();
    std::lock_guard<std::mutex> lock(mutex_);
    if (secs != cached_second_) {
      std::time_t t = std::chrono::system_clock::to_time_t(secs);
      std::tm tm{};
      gmtime_r(&t, &tm);
      char buf[32];
      std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
      cached_text_ = buf;
      cached_second_ = secs;
    }
    char millis[6] = {'.', static_cast<char>('0' + ms / 100), static_cast<char>('0' + ms / 10 % 10),
                      static_cast<char>('0' + ms % 10), 'Z', '\0'};
    if (json) {
      buffer_ += "{\"ts\":\"";
      buffer_ += cached_text_;
      buffer_.append(millis, 5);
      buffer_ += "\",\"level\":\"";
      buffer_ += level;
      buffer_ += "\",\"logger\":\"";
      buffer_ += logger_name;
      buffer_ += "\",\"msg\":";
      append_json_string(buffer_, msg);
      buffer_ += "}\n";
    } else {
      buffer_ += cached_text_;
      buffer_.append(millis, 5);
      buffer_ += ' ';
      buffer_ += level;
      buffer_ += ' ';
      buffer_ += logger_name;
      buffer_ += ": ";
      buffer_ += msg;
      buffer_ += '\n';
    }
    if (buffer_.size() >= 16 * 1024) flush_();
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t formatted;
    formatter_->format(msg, formatted);
    buffer_.append(formatted.data(), formatted.size());
    if (msg.level >= spdlog::level::warn || buffer_.size() >= 16 * 1024) flush_();
  }
  void flush_() override {
    std::size_t off = 0;
    while (off < buffer_.size()) {
      ssize_t n = ::write(STDERR_FILENO, buffer_.data() + off, buffer_.size() - off);
      if (n <= 0) break;  // nothing sensible to do when stderr is gone
      off += static_cast<std::size_t>(n);
    }
    buffer_.clear();
  }

 private:
  std::string buffer_;
  std::chrono::system_clock::time_point cached_second_{};
  std::string cached_text_;
};

template <class Out>
void append_json_string(Out& out, std::string_view s) {
  static const char* hex = "0123456789abcdef";
  auto put = [&](std::string_view text) { out.append(text.data(), text.data() + text.size()); };
  out.push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': put("\\\""); break;
      case '\\': put("\\\\"); break;
      case '\n': put("\\n"); break;
      case '\r': put("\\r"); break;
      case '\t': put("\\t"); break;
      default:
        if (c < 0x20) {
          const char esc[] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
          put(std::string_view(esc, 6));
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
}


// {"ts":"...Z","level":"info","logger":"http","msg":"..."} per line.
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    time_.format(msg, dest);  // writes {"ts":"<time>",
    dest.append(std::string_view("\"level\":"));
    auto level = spdlog::level::to_string_view(msg.level);
    append_json_string(dest, std::string_view(level.data(), level.size()));
    dest.append(std::string_view(",\"logger\":"));
    append_json_string(dest, std::string_view(msg.logger_name.data(), msg.logger_name.size()));
    dest.append(std::string_view(",\"msg\":"));
    append_json_string(dest, std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(std::string_view("}\n"));
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(); }

 private:
  spdlog::pattern_formatter time_{"{\"ts\":\"%Y-%m-%dT%H:%M:%S.%eZ\",", spdlog::pattern_time_type::utc, ""};
};

struct State {
  std::mutex mutex;
  std::shared_ptr<BufferedStderrSink> sink = std::make_shared<BufferedStderrSink>();
  spdlog::level::level_enum level = spdlog::level::info;
  bool json = false;
};

State& state() {
  static State s;
  return s;
}

}  // namespace

void setup_logging(const std::string& format, const std::string& level) {
  auto& s = state();
  s.json = format == "json";
  if (format == "json") s.sink->set_formatter(std::make_unique<JsonFormatter>());
  else
    s.sink->set_formatter(std::make_unique<spdlog::pattern_formatter>(
        "%Y-%m-%dT%H:%M:%S.%eZ %l %n: %v", spdlog::pattern_time_type::utc));
  set_log_level(level);
}

void set_log_level(const std::string& level) {
  auto& s = state();
  std::lock_guard lock(s.mutex);
  s.level = spdlog::level::from_str(level);
  spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& l) { l->set_level(s.level); });
}

void flush_logs() { state().sink->flush(); }

void log_preformatted(spdlog::logger& l, spdlog::level::level_enum level, std::string_view msg) {
  if (!l.should_log(level)) return;
  auto lv = spdlog::level::to_string_view(level);
  state().sink->append_line(state().json, l.name(), std::string_view(lv.data(), lv.size()), msg);
}

std::shared_ptr<spdlog::logger> logger(std::string_view module) {
  auto& s = state();
  std::string name(module);
  std::lock_guard lock(s.mutex);
  if (auto l = spdlog::get(name)) return l;
  auto l = std::make_shared<spdlog::logger>(name, s.sink);
  l->set_level(s.level);
  l->flush_on(spdlog::level::off);
  spdlog::register_logger(l);
  return l;
}

}  // namespace feuille
