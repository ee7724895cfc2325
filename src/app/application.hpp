#pragma once
// Wires the modules to one event loop and one thread pool and runs the daemon.
#include <memory>
#include <string>
#include <vector>

#include "app/cli.hpp"

namespace feuille::app {

// Runs the daemon until SIGTERM/SIGINT; returns the exit code.
int run_daemon(Invocation invocation, std::vector<std::string> argv);

// The process entry point: parses, then runs the command.
int main_entry(int argc, char** argv);

}  // namespace feuille::app
