#include "nkeys.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <ctime>
#include <fstream>
#include <memory>
#include <stdexcept>

namespace taskhost::testing::nkeys {
namespace nk = transport::nats::nkey;
namespace fs = std::filesystem;

namespace {

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

void need(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("OpenSSL: ") + what);
}

// JWT segments: base64url without padding.
std::string base64url(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(data.data()), static_cast<int>(data.size()));
  out.resize(static_cast<size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    else if (c == '/') c = '_';
  }
  return out;
}

// The claims' id: base32 of SHA-512/256 over the claims without "jti", as nats-io/jwt v2 makes it (the
// server does not check it, but a JWT without one is not what nsc writes).
std::string claims_id(const boost::json::object& claims) {
  const std::string json = boost::json::serialize(claims);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  need(EVP_Digest(json.data(), json.size(), digest, &len, EVP_sha512_256(), nullptr) == 1, "SHA-512/256");
  return nk::base32(digest, len);
}

boost::json::object unlimited() {
  return {{"subs", -1}, {"data", -1}, {"payload", -1}};
}

}  // namespace

KeyPair KeyPair::make(Type type) {
  KeyPair k;
  k.type = type;
  need(RAND_bytes(k.seed.data(), static_cast<int>(k.seed.size())) == 1, "random seed");
  k.public_raw = nk::ed25519_public(k.seed);
  return k;
}

std::string KeyPair::public_key() const { return nk::encode_public(type, public_raw); }

std::string KeyPair::seed_text() const { return nk::encode_seed(type, seed); }

std::string KeyPair::sign(std::string_view data) const {
  std::unique_ptr<EVP_PKEY, PkeyFree> key(
      EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed.data(), seed.size()));
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  need(key && ctx, "ed25519 key");
  need(EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) == 1, "ed25519 sign init");
  std::string sig(64, '\0');
  size_t len = sig.size();
  need(EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                      reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1 && len == 64,
       "ed25519 sign");
  return sig;
}

std::string jwt(const KeyPair& issuer, const std::string& subject, const std::string& name, boost::json::object nats) {
  nats["version"] = 2;
  boost::json::object claims{{"iat", static_cast<int64_t>(std::time(nullptr))},
                             {"iss", issuer.public_key()},
                             {"sub", subject},
                             {"name", name},
                             {"nats", std::move(nats)}};
  claims["jti"] = claims_id(claims);
  const std::string signing_input = base64url(R"({"typ":"JWT","alg":"ed25519-nkey"})") + "." +
                                    base64url(boost::json::serialize(claims));
  return signing_input + "." + base64url(issuer.sign(signing_input));
}

std::string operator_jwt(const KeyPair& op, const std::string& system_account) {
  return jwt(op, op.public_key(), "taskhost-test-operator", {{"type", "operator"}, {"system_account", system_account}});
}

std::string account_jwt(const KeyPair& op, const KeyPair& account, const std::string& name, bool jetstream) {
  boost::json::object limits = unlimited();
  for (const char* k : {"imports", "exports", "conn", "leaf"}) limits[k] = -1;
  limits["wildcards"] = true;
  if (jetstream) {
    for (const char* k : {"mem_storage", "disk_storage", "streams", "consumer"}) limits[k] = -1;
  }
  return jwt(op, account.public_key(), name,
             {{"type", "account"},
              {"limits", std::move(limits)},
              {"default_permissions", {{"pub", boost::json::object{}}, {"sub", boost::json::object{}}}}});
}

std::string user_jwt(const KeyPair& account, const KeyPair& user, const std::string& name) {
  boost::json::object nats = unlimited();
  nats["type"] = "user";
  nats["pub"] = boost::json::object{};
  nats["sub"] = boost::json::object{};
  return jwt(account, user.public_key(), name, std::move(nats));
}

std::string creds(const std::string& user_jwt, const KeyPair& user) {
  return "-----BEGIN NATS USER JWT-----\n" + user_jwt +
         "\n------END NATS USER JWT------\n\n"
         "************************* IMPORTANT *************************\n"
         "NKEY Seed printed below can be used to sign and prove identity.\n"
         "NKEYs are sensitive and should be treated as secrets.\n\n"
         "-----BEGIN USER NKEY SEED-----\n" +
         user.seed_text() +
         "\n------END USER NKEY SEED------\n\n"
         "*************************************************************\n";
}

std::string Operator::server_config(const fs::path& dir) const {
  const fs::path op_file = dir / "op.jwt";
  write_file(op_file, operator_jwt(op, sys.public_key()));
  return "operator: \"" + op_file.string() + "\"\n" +
         "system_account: " + sys.public_key() + "\n" +
         "resolver: MEMORY\n"
         "resolver_preload: {\n" +
         "  " + account.public_key() + ": \"" + account_jwt(op, account, "APP") + "\"\n" +
         "  " + sys.public_key() + ": \"" + account_jwt(op, sys, "SYS", false) + "\"\n" +
         "}\n";
}

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  if (!out.flush()) throw std::runtime_error("cannot write " + path.string());
}

}  // namespace taskhost::testing::nkeys
