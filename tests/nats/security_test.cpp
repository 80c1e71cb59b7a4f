// TLS and authentication through the real parts: a nats-server that requires TLS (a throwaway CA and
// server certificate made with openssl for this test), user/password or token authorization, nkey users,
// and operator (JWT) mode with a .creds file (keys and JWTs made by tests/support/nkeys, as nsc would); a
// Host configured with the CA and the credentials runs a task; refused credentials and an untrusted
// server fail at once (not after connect_timeout) with an error that says what to fix and never shows a
// secret.
#include "nats_server.hpp"
#include "nkeys.hpp"
#include "rig.hpp"

#include "transport/nats/connection.hpp"
#include "transport/nats/nats_options.hpp"
#include "transport/nats/nkey.hpp"

#include <doctest/doctest.h>

#include <fstream>

using namespace taskhost;
using namespace taskhost::testing;
namespace fs = std::filesystem;
namespace tn = taskhost::transport::nats;
namespace nk = taskhost::transport::nats::nkey;
using nkeys::KeyPair;

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
      if (std::chrono::steady_clock::now() >= deadline) {
        FAIL("no JetStream behind " << tn::redact_url(o.url) << ": " << std::string(e.what()));
      }
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

// What nats_options makes of `c`'s server and authorization keys, on the fast test options: the way a
// taskhost.toml reaches the transport.
NatsOptions options_from(const config::NatsConfig& c) {
  const NatsOptions from = tn::nats_options(c, "w1");
  NatsOptions o = test_options(from.url, "w1");
  o.credentials = from.credentials;
  o.nkey_seed_file = from.nkey_seed_file;
  o.user = from.user;
  o.password = from.password;
  o.token = from.token;
  return o;
}

// A key file the transport cannot use: `content` (empty: no file at all) and the error after "[nats] <key>: ".
struct BadFile {
  std::string name;
  std::string content;
  std::string error;
};

// Each bad file in turn at `path` is an error naming it, word for word (so it shows no secret): from the
// config (nats_options) and from a transport given the path directly, at once rather than after
// connect_timeout (cnats itself would only fail each connect). The fields are the key's in each struct.
void bad_files_fail_at_once(const fs::path& path, const std::string& key, config::NatsConfig c, NatsOptions o,
                            std::string config::NatsConfig::*config_field, std::string NatsOptions::*options_field,
                            const std::vector<BadFile>& cases) {
  c.*config_field = path.string();
  o.*options_field = path.string();
  for (const auto& t : cases) {
    CAPTURE(t.name);
    fs::remove(path);
    if (!t.content.empty()) nkeys::write_file(path, t.content);
    const std::string expected = "[nats] " + key + ": " + t.error;
    std::string what;
    try {
      (void)tn::nats_options(c, "w1");
    } catch (const std::runtime_error& e) {
      what = e.what();
    }
    CHECK(what == expected);
    CHECK(refused(o) == expected);
  }
}

// Where cnats would read a '\r' or a blank as part of the seed.
const std::string kBlanksAroundSeed =
    " has blanks or a carriage return (a CRLF line end) around the seed, which cnats reads as part of it";

std::string with_crlf(const std::string& text) {
  std::string out;
  for (char ch : text) {
    if (ch == '\n') out += '\r';
    out += ch;
  }
  return out;
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

TEST_CASE("a tls:// URL never falls back to plain text: a server without TLS is refused at once") {
  TempDir dir("taskhost-nats-tls-wanted");
  auto server = start_server(dir.path() / "n1", "authorization {\n  token: \"t0ken-ok\"\n}\n");
  NatsOptions o = test_options(port_url("tls", "t0ken-ok", *server), "w1");  // no tls_ca: the system's CAs
  CHECK(refused(o).find("the server does not offer it") != std::string::npos);
  SUBCASE("also as one of several URLs, in any case") {
    o.url = port_url("nats", "t0ken-ok", *server) + ", " + port_url("TLS", "t0ken-ok", *server);
    CHECK(refused(o).find("the server does not offer it") != std::string::npos);
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
    runs_a_task(options_from(c), "token-file-1");
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

TEST_CASE("nkeys: the published nk examples decode to their public keys and encode back") {
  // Example keys from the NATS documentation (nkey_auth.md) and the nkeys.net README, not secrets: an
  // oracle that is not this code.
  TempDir dir("taskhost-nkey-examples");
  const fs::path seed = dir.path() / "user.nk";
  nkeys::write_file(seed, "SUACSSL3UAHUDXKFSNVUZRF5UHPMWZ6BFDTJ7M6USDXIEDNPPQYYYCU3VY\n");
  CHECK(nk::user_public_key_from_seed_file(seed.string()) ==
        "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4");

  nk::Seed op;
  nk::decode_seed("SOAELH6NJCEK4HST5644G4HK7TOAFZGRRJHNM4EUKUY7PPNDLIKO5IH4JM", op);
  CHECK(op.type == nk::Type::operator_);
  CHECK(nk::encode_public(op.type, nk::ed25519_public(op.raw)) ==
        "ODPWIBQJVIQ42462QAFI2RKJC4RZHCQSIVPRDDHWFCJAP52NRZK6Z2YC");
  CHECK(nk::encode_seed(op.type, op.raw) == "SOAELH6NJCEK4HST5644G4HK7TOAFZGRRJHNM4EUKUY7PPNDLIKO5IH4JM");

  const KeyPair made = KeyPair::make(nk::Type::account);
  CHECK(made.public_key().starts_with("A"));
  CHECK(made.seed_text().starts_with("SA"));
  CHECK(made.public_key().size() == 56);
  CHECK(made.seed_text().size() == 58);
}

TEST_CASE("operator mode: a host with a .creds file runs a task; untrusted creds fail at once, naming the file") {
  TempDir dir("taskhost-nats-operator");
  const nkeys::Operator trust;
  auto server = start_server(dir.path() / "n1", trust.server_config(dir.path()));

  // What `nsc generate creds` writes for a user of the application account (JetStream enabled).
  const KeyPair user = KeyPair::make(nk::Type::user);
  const fs::path creds = dir.path() / "w1.creds";
  nkeys::write_file(creds, nkeys::creds(nkeys::user_jwt(trust.account, user, "w1"), user));
  config::NatsConfig c;
  c.url = server->url();
  c.credentials = creds.string();
  const NatsOptions o = options_from(c);
  CHECK(o.credentials == creds.string());
  runs_a_task(o, "creds-1");

  SUBCASE("no credentials: an operator-mode server admits nobody") {
    NatsOptions bad = o;
    bad.credentials.clear();
    CHECK(refused(bad).find("Authorization") != std::string::npos);
  }
  SUBCASE("a user of an account the operator never signed") {
    const KeyPair stranger = KeyPair::make(nk::Type::account);
    const KeyPair other = KeyPair::make(nk::Type::user);
    const fs::path path = dir.path() / "stranger.creds";
    nkeys::write_file(path, nkeys::creds(nkeys::user_jwt(stranger, other, "w1"), other));
    NatsOptions bad = o;
    bad.credentials = path.string();
    const std::string what = refused(bad);
    CHECK(what.find("check the credentials file " + path.string()) != std::string::npos);
    CHECK(what.find(other.seed_text()) == std::string::npos);
  }
  SUBCASE("a valid user JWT with another key's seed: the nonce signature does not verify") {
    const KeyPair thief = KeyPair::make(nk::Type::user);
    const fs::path path = dir.path() / "mismatch.creds";
    nkeys::write_file(path, nkeys::creds(nkeys::user_jwt(trust.account, user, "w1"), thief));
    NatsOptions bad = o;
    bad.credentials = path.string();
    CHECK(refused(bad).find("check the credentials file " + path.string()) != std::string::npos);
  }
  SUBCASE("a creds file cnats could not use: an error at once naming the file") {
    const std::string full = nkeys::creds(nkeys::user_jwt(trust.account, user, "w1"), user);
    const fs::path path = dir.path() / "bad.creds";
    const std::string quoted = "'" + path.string() + "'";
    bad_files_fail_at_once(
        path, "credentials", c, o, &config::NatsConfig::credentials, &NatsOptions::credentials,
        {{"a missing file", "", "cannot read " + quoted},
         {"a bare seed", user.seed_text() + "\n", quoted + " holds no user JWT (-----BEGIN NATS USER JWT-----)"},
         {"the JWT without its seed", full.substr(0, full.find("\n\n")) + "\n",
          quoted + " holds no user nkey seed (a line starting with SU)"},
         {"CRLF line ends", with_crlf(full), quoted + kBlanksAroundSeed}});
  }
}

TEST_CASE("[nats] nkey_seed_file: a host runs a task; an unlisted key is refused at once, naming the file") {
  TempDir dir("taskhost-nats-nkey");
  const KeyPair user = KeyPair::make(nk::Type::user);
  auto server = start_server(dir.path() / "n1",
                             "authorization {\n  users = [ { nkey: \"" + user.public_key() + "\" } ]\n}\n");
  const fs::path seed = dir.path() / "w1.nk";
  nkeys::write_file(seed, user.seed_text() + "\n");  // what `nk -gen user` writes
  config::NatsConfig c;
  c.url = server->url();
  c.nkey_seed_file = seed.string();
  const NatsOptions o = options_from(c);
  CHECK(o.nkey_seed_file == seed.string());
  runs_a_task(o, "nkey-1");

  SUBCASE("an indented seed after a comment: found where cnats finds it") {
    const fs::path path = dir.path() / "commented.nk";
    nkeys::write_file(path, "# taskhost w1\n\t" + user.seed_text() + "\n");
    NatsOptions commented = o;
    commented.nkey_seed_file = path.string();
    CHECK_NOTHROW(tn::NatsTransport{commented});
  }
  SUBCASE("1000 connects, none refused: cnats 3.4 drops the signature of one nonce in 256") {
    // Without the retry in Connection, all 1000 succeed with probability (255/256)^1000, about 2%.
    int refused_connects = 0;
    std::string last_error;
    for (int i = 0; i < 1000; ++i) {
      try {
        tn::Connection connection(o, "taskhost nkey " + std::to_string(i));
      } catch (const tn::NatsError& e) {
        ++refused_connects;
        last_error = e.what();
      }
    }
    CHECK_MESSAGE(refused_connects == 0, last_error);
  }
  SUBCASE("no nkey: the server admits nobody else") {
    NatsOptions bad = o;
    bad.nkey_seed_file.clear();
    CHECK(refused(bad).find("Authorization") != std::string::npos);
  }
  SUBCASE("the seed of a key the server does not list") {
    const KeyPair other = KeyPair::make(nk::Type::user);
    const fs::path path = dir.path() / "other.nk";
    nkeys::write_file(path, other.seed_text() + "\n");
    NatsOptions bad = o;
    bad.nkey_seed_file = path.string();
    const std::string what = refused(bad);
    CHECK(what.find("check the nkey_seed_file " + path.string() + ": the server must list its public key " +
                    other.public_key()) != std::string::npos);
    CHECK(what.find(other.seed_text()) == std::string::npos);
  }
}

TEST_CASE("[nats] nkey_seed_file without a usable user seed: an error naming the file, never the seed") {
  TempDir dir("taskhost-nats-nkey-bad");
  const KeyPair user = KeyPair::make(nk::Type::user);
  const KeyPair account = KeyPair::make(nk::Type::account);
  std::string damaged = user.seed_text();
  damaged[20] = damaged[20] == 'A' ? 'B' : 'A';  // CRC16 catches any one changed character

  const fs::path path = dir.path() / "seed.nk";
  const std::string quoted = "'" + path.string() + "'";
  const std::vector<BadFile> cases{
      {"a missing file", "", "cannot read " + quoted},
      {"an empty file", "\n", quoted + " holds no user nkey seed (a line starting with SU)"},
      {"a public key instead of a seed", user.public_key() + "\n",
       quoted + " holds no user nkey seed (a line starting with SU)"},
      {"an account seed", account.seed_text() + "\n", quoted + " holds an account seed, not a user seed (SU...)"},
      {"a damaged seed", damaged + "\n",
       quoted + " holds no valid nkey seed: the seed's checksum does not match (a damaged or mistyped seed)"},
      {"a cut-off seed", user.seed_text().substr(0, 40) + "\n",
       quoted + " holds no valid nkey seed: the seed has the wrong length"},
      {"a CRLF line end", user.seed_text() + "\r\n", quoted + kBlanksAroundSeed},
      {"a blank after the seed", user.seed_text() + " \n", quoted + kBlanksAroundSeed},
  };
  // No server at all: these never get as far as connecting.
  const NatsOptions o = test_options("nats://127.0.0.1:" + std::to_string(free_tcp_port()), "w1");
  bad_files_fail_at_once(path, "nkey_seed_file", config::NatsConfig{}, o, &config::NatsConfig::nkey_seed_file,
                         &NatsOptions::nkey_seed_file, cases);
}
