// TLS and authentication through the real parts: a nats-server that requires TLS (a throwaway CA and
// server certificate made with openssl for this test) and user/password or token authorization; a Host
// configured with the CA and the credentials runs a task; refused credentials and an untrusted server
// fail at once (not after connect_timeout) with an error that says what to fix and never shows a secret.
#include "nats_server.hpp"
#include "rig.hpp"

#include "transport/nats/connection.hpp"
#include "transport/nats/nats_options.hpp"

#include <doctest/doctest.h>

#include <fstream>

using namespace taskhost;
using namespace taskhost::testing;
namespace fs = std::filesystem;
namespace tn = taskhost::transport::nats;

namespace {

void openssl(const std::vector<std::string>& args, const fs::path& log) {
  std::vector<std::string> argv{"/usr/bin/openssl"};
  argv.insert(argv.end(), args.begin(), args.end());
  Subprocess p(argv, log);
  const int status = p.wait(30s);
  REQUIRE_MESSAGE(status == 0, "openssl " << args.front() << " failed; see " << log.string());
}

// A CA and a server certificate it signed for 127.0.0.1 (EC keys: fast to make).
struct Pki {
  fs::path ca, ca_key, cert, key;
};

Pki make_pki(const fs::path& dir, const std::string& name) {
  fs::create_directories(dir);
  Pki p{dir / (name + "-ca.pem"), dir / (name + "-ca.key"), dir / (name + "-server.pem"), dir / (name + "-server.key")};
  const fs::path log = dir / "openssl.log";
  const fs::path csr = dir / (name + "-server.csr");
  const fs::path ext = dir / (name + "-san.ext");
  std::ofstream(ext) << "subjectAltName=IP:127.0.0.1,DNS:localhost\n";
  openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
           p.ca_key.string(), "-out", p.ca.string(), "-days", "2", "-subj", "/CN=taskhost-test-ca-" + name},
          log);
  openssl({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", p.key.string(),
           "-out", csr.string(), "-subj", "/CN=localhost"},
          log);
  openssl({"x509", "-req", "-in", csr.string(), "-CA", p.ca.string(), "-CAkey", p.ca_key.string(), "-CAcreateserial",
           "-out", p.cert.string(), "-days", "2", "-extfile", ext.string()},
          log);
  return p;
}

std::unique_ptr<NatsServer> start_server(const fs::path& dir, const std::string& config) {
  NatsServer::Options o;
  o.work_dir = dir;
  o.extra_config = config;
  return std::make_unique<NatsServer>(o);
}

std::string port_url(const std::string& scheme, const std::string& userinfo, const NatsServer& s) {
  return scheme + "://" + userinfo + "@127.0.0.1:" + std::to_string(s.client_port());
}

// The first client also waits for JetStream to answer behind the authorization.
std::unique_ptr<NatsTaskClient> client_when_ready(const NatsOptions& o) {
  const auto deadline = std::chrono::steady_clock::now() + 15s;
  for (;;) {
    try {
      return std::make_unique<NatsTaskClient>(o);
    } catch (const std::exception& e) {
      if (std::chrono::steady_clock::now() >= deadline) FAIL("no JetStream behind " << tn::redact_url(o.url) << ": " << e.what());
      std::this_thread::sleep_for(100ms);
    }
  }
}

// Constructing the transport must throw NatsError quickly; returns its message.
std::string refused(const NatsOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  std::string what;
  try {
    tn::NatsTransport t(o);
  } catch (const tn::NatsError& e) {
    what = e.what();
  }
  CHECK_MESSAGE(!what.empty(), "connected to " << tn::redact_url(o.url) << " although it should not have");
  // Not after connect_timeout (10 s in test_options): these errors are not waited out.
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  return what;
}

void runs_a_task(const NatsOptions& o, const std::string& id) {
  auto client = client_when_ready(o);
  HostRig host(o);
  CHECK(client->submit(assignment(id, "hello.greet", R"({"name":"Ada"})")) == id);
  const auto c = client->wait(id, 10s);
  CHECK(c.state() == v1::SUCCEEDED);
  CHECK(c.output().string_value() == "Hello, Ada!");
  CHECK(c.worker_id() == "w1");
}

}  // namespace

TEST_CASE("TLS with a private CA and user/password: a host runs a task; bad credentials or trust fail at once") {
  TempDir dir("taskhost-nats-tls");
  const Pki pki = make_pki(dir.path() / "pki", "good");
  const Pki other = make_pki(dir.path() / "pki", "other");
  auto server = start_server(dir.path() / "n1",
                             "tls {\n  cert_file: \"" + pki.cert.string() + "\"\n  key_file: \"" + pki.key.string() +
                                 "\"\n  timeout: 2\n}\n"
                                 "authorization {\n  users: [ { user: \"taskhost\", password: \"s3cret\" } ]\n}\n");

  NatsOptions o = test_options(port_url("tls", "taskhost:s3cret", *server), "w1");
  o.tls_ca = pki.ca.string();
  runs_a_task(o, "tls-1");

  SUBCASE("a wrong password is refused, and the message hides the password") {
    NatsOptions bad = o;
    bad.url = port_url("tls", "taskhost:wrong-pass", *server);
    const std::string what = refused(bad);
    CHECK(what.find("user/password") != std::string::npos);
    CHECK(what.find("wrong-pass") == std::string::npos);
    CHECK(what.find("taskhost:***@") != std::string::npos);
  }
  SUBCASE("a server certificate from another CA is not trusted") {
    NatsOptions bad = o;
    bad.tls_ca = other.ca.string();
    CHECK(refused(bad).find("tls_ca") != std::string::npos);
  }
  SUBCASE("no CA configured: the server's certificate is not trusted") {
    NatsOptions bad = o;
    bad.tls_ca.clear();
    CHECK(refused(bad).find("tls_ca") != std::string::npos);
  }
  SUBCASE("a plain nats:// URL and no CA: cnats upgrades to the TLS the server requires, and cannot trust it") {
    NatsOptions bad = o;
    bad.tls_ca.clear();
    bad.url = port_url("nats", "taskhost:s3cret", *server);
    CHECK(refused(bad).find("set tls_ca") != std::string::npos);
  }
}

TEST_CASE("token authorization: a host runs a task; a wrong token is refused at once and not shown") {
  TempDir dir("taskhost-nats-token");
  auto server = start_server(dir.path() / "n1", "authorization {\n  token: \"t0ken-ok\"\n}\n");
  NatsOptions o = test_options(port_url("nats", "t0ken-ok", *server), "w1");
  runs_a_task(o, "token-1");

  NatsOptions bad = o;
  bad.url = port_url("nats", "t0ken-bad", *server);
  const std::string what = refused(bad);
  CHECK(what.find("t0ken-bad") == std::string::npos);
  CHECK(what.find("***@") != std::string::npos);
}

TEST_CASE("[nats] user + password_file and token_file: secrets come from files, and errors name the file") {
  TempDir dir("taskhost-nats-secret-files");
  const fs::path pw = dir.path() / "pw", token = dir.path() / "token";
  std::ofstream(pw) << "s3cret\n";
  std::ofstream(token) << "t0ken-ok\n";

  SUBCASE("user and password_file") {
    auto server = start_server(dir.path() / "n1",
                               "authorization {\n  users: [ { user: \"taskhost\", password: \"s3cret\" } ]\n}\n");
    config::NatsConfig c;
    c.url = server->url();
    c.user = "taskhost";
    c.password_file = pw.string();
    const NatsOptions o = tn::nats_options(c, "w1");
    CHECK(o.password == "s3cret");  // the line end is not part of the secret
    NatsOptions run = test_options(o.url, "w1");
    run.user = o.user;
    run.password = o.password;
    runs_a_task(run, "pw-1");

    std::ofstream(pw) << "wrong-pass\n";
    run.password = tn::nats_options(c, "w1").password;
    const std::string what = refused(run);
    CHECK(what.find("check user 'taskhost' and its password_file") != std::string::npos);
    CHECK(what.find("wrong-pass") == std::string::npos);
  }
  SUBCASE("token_file") {
    auto server = start_server(dir.path() / "n1", "authorization {\n  token: \"t0ken-ok\"\n}\n");
    config::NatsConfig c;
    c.url = server->url();
    c.token_file = token.string();
    NatsOptions run = test_options(c.url, "w1");
    run.token = tn::nats_options(c, "w1").token;
    runs_a_task(run, "token-file-1");
  }
  SUBCASE("a secret file that cannot be read is an error naming the key and the file") {
    config::NatsConfig c;
    c.user = "taskhost";
    c.password_file = (dir.path() / "missing").string();
    try {
      (void)tn::nats_options(c, "w1");
      FAIL("nats_options read a missing password file");
    } catch (const std::runtime_error& e) {
      CHECK(std::string(e.what()) == "[nats] password_file: cannot read '" + c.password_file + "'");
    }
  }
}
