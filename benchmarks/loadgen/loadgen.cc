// The load generator of benchmarks/server_grpc.py, in C++ on gRPC's C core (Debian's
// libgrpc++-dev): unary calls with an empty request message, a fixed number in flight on one
// channel (one HTTP/2 connection over mutual TLS), answers counted by status and not parsed. One
// thread drives a completion queue, so the client costs far less CPU per call than the servers it
// measures. Built by the benchmark:
//
//   g++ -O2 -std=c++17 loadgen.cc -o loadgen $(pkg-config --cflags --libs grpc++)
//   loadgen HOST:PORT ROOT.pem CLIENT.pem CLIENT.key /package.Service/Method WARMUP SECONDS N
//
// Prints "measuring" when the measured window opens (after the warm-up) and "measured" when it
// closes, so that the caller can read the other processes' CPU time at the same moments, then one
// line: calls= errors= seconds= p50_us= p99_us= cpu_s= first_error= (cpu_s: this process's CPU
// time in the window).
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

std::string ReadFile(const char* path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::cerr << "cannot read " << path << "\n";
    std::exit(2);
  }
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

struct Call {
  grpc::ClientContext context;
  grpc::ByteBuffer response;
  grpc::Status status;
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> reader;
  Clock::time_point began;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 9) {
    std::cerr << "usage: loadgen HOST:PORT ROOT CERT KEY METHOD WARMUP SECONDS IN_FLIGHT\n";
    return 2;
  }
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = ReadFile(argv[2]);
  tls.pem_cert_chain = ReadFile(argv[3]);
  tls.pem_private_key = ReadFile(argv[4]);
  const std::string method = argv[5];
  const auto warmup = std::chrono::duration<double>(std::atof(argv[6]));
  const auto seconds = std::chrono::duration<double>(std::atof(argv[7]));
  const int in_flight = std::atoi(argv[8]);

  grpc::ChannelArguments arguments;
  // No deadline or census filters: the calls carry no deadline and nothing is traced.
  arguments.SetInt(GRPC_ARG_MINIMAL_STACK, 1);
  auto channel = grpc::CreateCustomChannel(argv[1], grpc::SslCredentials(tls), arguments);
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  grpc::Slice nothing("", 0);
  const grpc::ByteBuffer empty(&nothing, 1);  // an empty message: every field at its default

  auto start = [&](Call* call) {
    call->began = Clock::now();
    call->reader = stub.PrepareUnaryCall(&call->context, method, empty, &cq);
    call->reader->StartCall();
    call->reader->Finish(&call->response, &call->status, call);
  };

  std::vector<long> latencies;
  latencies.reserve(1 << 20);
  long errors = 0;
  std::string first_error;
  enum { WARMING, RECORDING, STOPPING } phase = WARMING;
  const auto opened = Clock::now() + std::chrono::duration_cast<Clock::duration>(warmup);
  const auto closes = opened + std::chrono::duration_cast<Clock::duration>(seconds);
  double cpu0 = 0, cpu1 = 0;
  Clock::time_point wall0, wall1;

  int open = 0;
  for (int i = 0; i < in_flight; ++i, ++open) start(new Call);
  void* tag;
  bool ok;
  while (open > 0) {
    const auto got = cq.AsyncNext(&tag, &ok, std::chrono::system_clock::now() + std::chrono::milliseconds(100));
    if (got == grpc::CompletionQueue::SHUTDOWN) break;
    const auto now = Clock::now();
    if (phase == WARMING && now >= opened) {
      phase = RECORDING;
      cpu0 = CpuSeconds();
      wall0 = now;
      std::printf("measuring\n");
      std::fflush(stdout);
    } else if (phase == RECORDING && now >= closes) {
      phase = STOPPING;
      cpu1 = CpuSeconds();
      wall1 = now;
      std::printf("measured\n");
      std::fflush(stdout);
    } else if (phase == STOPPING && now >= closes + std::chrono::seconds(30)) {
      break;  // calls that never end: report what was measured
    }
    if (got != grpc::CompletionQueue::GOT_EVENT) continue;
    auto* call = static_cast<Call*>(tag);
    if (phase == RECORDING) {
      if (ok && call->status.ok()) {
        latencies.push_back(
            std::chrono::duration_cast<std::chrono::microseconds>(now - call->began).count());
      } else if (errors++ == 0) {
        first_error = std::to_string(call->status.error_code()) + ":" +
                      call->status.error_message();
      }
    }
    delete call;
    --open;
    if (phase != STOPPING) {
      start(new Call);
      ++open;
    }
  }
  std::sort(latencies.begin(), latencies.end());
  const size_t n = latencies.size();
  const long p50 = n ? latencies[n / 2] : 0;
  const long p99 = n ? latencies[std::min(n - 1, static_cast<size_t>(n * 0.99))] : 0;
  std::replace(first_error.begin(), first_error.end(), ' ', '_');
  std::printf("calls=%zu errors=%ld seconds=%.6f p50_us=%ld p99_us=%ld cpu_s=%.4f first_error=%s\n",
              n, errors, std::chrono::duration<double>(wall1 - wall0).count(), p50, p99,
              cpu1 - cpu0, first_error.c_str());
  std::fflush(stdout);
  std::_Exit(0);  // nothing left to clean up that matters, and no shutdown waits
}
