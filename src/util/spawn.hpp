#pragma once
// co_spawn with a completion handler that logs an escaped exception instead
// of dropping it (nothing is silently detached).
#include <exception>
#include <memory>
#include <string>

#include <boost/asio/co_spawn.hpp>
#include <boost/system/system_error.hpp>
#include <spdlog/logger.h>

namespace feuille {

// Coroutines started through spawn() and not finished yet (shutdown waits
// for them to drain).
long live_tasks();
void task_started();
void task_finished();

template <class ExecutorOrContext, class Awaitable>
void spawn(ExecutorOrContext&& ex, Awaitable&& task, std::shared_ptr<spdlog::logger> log, std::string what) {
  task_started();
  boost::asio::co_spawn(std::forward<ExecutorOrContext>(ex), std::forward<Awaitable>(task),
                        [log = std::move(log), what = std::move(what)](std::exception_ptr e) {
                          task_finished();
                          if (!e) return;
                          try {
                            std::rethrow_exception(e);
                          } catch (const boost::system::system_error& se) {
                            if (se.code() == boost::asio::error::operation_aborted) return;
                            log->error("{}: {}", what, se.what());
                          } catch (const std::exception& ex) {
                            log->error("{}: {}", what, ex.what());
                          } catch (...) {
                            log->error("{}: unknown exception", what);
                          }
                        });
}

}  // namespace feuille
