// feuille_test_env: starts and stops the services the integration tests share
// (a private PostgreSQL cluster, a podman system service on a private socket),
// as CTest fixtures.
//   feuille_test_env postgres-start DIR   writes DIR/database-url
//   feuille_test_env postgres-stop DIR
//   feuille_test_env podman-start DIR CONTAINERS_CONF [STANDIN_BINARY]
//       writes DIR/podman-url (and DIR/standin-image: the stand-in image, imported),
//       and installs the tests' tenant egress rules (support/podman.hpp)
//   feuille_test_env podman-stop DIR
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>

#include "compute/egress.hpp"
#include "compute/podman_client.hpp"
#include "compute/standin_image.hpp"
#include "dev/embedded_postgres.hpp"
#include "dev/podman_service.hpp"
#include "support/podman.hpp"

namespace {

// Imports the stand-in binary as an image through the service just started.
std::string import_standin(const std::string& url, const std::string& binary) {
  namespace asio = boost::asio;
  asio::io_context ioc{1};
  asio::thread_pool pool{1};
  feuille::compute::PodmanClient client(ioc.get_executor(), url, {});
  auto done = asio::co_spawn(
      ioc, [&]() { return feuille::compute::ensure_standin_image(client, pool, binary, 1000, 1000); },
      asio::use_future);
  ioc.run();
  pool.join();
  return done.get().reference;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: feuille_test_env postgres-start|postgres-stop|podman-start|podman-stop DIR [CONF]\n");
    return 2;
  }
  std::string cmd = argv[1], dir = argv[2];
  try {
    std::filesystem::create_directories(dir);
    if (cmd == "postgres-start") {
      feuille::dev::EmbeddedPostgres::stop_running(dir + "/postgres");
      feuille::dev::EmbeddedPostgres pg(dir + "/postgres", /*tie_to_parent=*/false);
      pg.start();
      std::ofstream(dir + "/database-url") << pg.url("postgres") << "\n";
      std::printf("PostgreSQL ready: %s\n", pg.url("postgres").c_str());
      // Leave it running for the tests: the cleanup fixture stops it.
      std::fflush(stdout);
      std::_Exit(0);
    } else if (cmd == "postgres-stop") {
      feuille::dev::EmbeddedPostgres::stop_running(dir + "/postgres");
    } else if (cmd == "podman-start") {
      if (argc < 4) throw std::runtime_error("podman-start needs CONTAINERS_CONF");
      setenv("CONTAINERS_CONF", argv[3], 1);
      feuille::dev::PodmanService podman(dir + "/podman", "runc", /*tie_to_parent=*/false);
      podman.start();
      std::ofstream(dir + "/podman-url") << podman.url() << "\n";
      feuille::Config egress;
      egress.egress_address = feuille::test::test_egress_address();
      feuille::compute::install_egress(feuille::compute::egress_plan(egress));
      std::printf("tenant egress rules installed for %s\n", egress.egress_address.c_str());
      std::printf("podman ready: %s\n", podman.url().c_str());
      if (argc >= 5) {
        auto image = import_standin(podman.url(), argv[4]);
        std::ofstream(dir + "/standin-image") << image << "\n";
        std::printf("stand-in image: %s\n", image.c_str());
      }
      std::fflush(stdout);
      std::_Exit(0);
    } else if (cmd == "podman-stop") {
      feuille::dev::PodmanService::stop_running(dir + "/podman");
    } else {
      std::fprintf(stderr, "unknown command %s\n", cmd.c_str());
      return 2;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "feuille_test_env: %s\n", e.what());
    return 1;
  }
  return 0;
}
