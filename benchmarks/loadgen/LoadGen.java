package vn.vnegov.bench;

import io.grpc.CallOptions;
import io.grpc.ClientCall;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.netty.NettyChannelBuilder;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.channel.socket.nio.NioSocketChannel;
import io.netty.handler.ssl.DebianJdkAlpn;
import io.netty.handler.ssl.SslContextBuilder;
import io.netty.handler.ssl.SslProvider;
import java.io.ByteArrayInputStream;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.lang.management.ManagementFactory;
import java.util.Arrays;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The load generator of benchmarks/server_grpc.py: unary calls with an empty request message, a
 * fixed number in flight on one channel (one HTTP/2 connection over mutual TLS), answers counted
 * by status and not parsed. Built by the benchmark with javac from Debian's grpc-java and netty.
 *
 * <pre>
 * java -cp CP vn.vnegov.bench.LoadGen HOST:PORT ROOT.pem CLIENT.pem CLIENT-PKCS8.key \
 *      /package.Service/Method WARMUP_SECONDS SECONDS IN_FLIGHT
 * </pre>
 *
 * Prints "measuring" when the measured window opens (after the warm-up) and "measured" when it
 * closes, so that the caller can read the other processes' CPU time at the same moments, then one
 * line of results: {@code calls= errors= first_error= seconds= p50_us= p99_us= cpu_s=} (cpu_s:
 * this process's CPU time in the window).
 */
public final class LoadGen {
  private LoadGen() {}

  private static final MethodDescriptor.Marshaller<byte[]> BYTES =
      new MethodDescriptor.Marshaller<byte[]>() {
        @Override
        public InputStream stream(byte[] value) {
          return new ByteArrayInputStream(value);
        }

        @Override
        public byte[] parse(InputStream stream) {
          try {
            return stream.readAllBytes();
          } catch (IOException e) {
            throw new RuntimeException(e);
          }
        }
      };
  private static final byte[] EMPTY = new byte[0];

  /** Runs on the channel's one event-loop thread only (direct executor): no locking needed. */
  private static final class Driver {
    final ManagedChannel channel;
    final MethodDescriptor<byte[], byte[]> method;
    volatile boolean recording;
    volatile boolean stopping;
    long[] latencies = new long[1 << 16];
    int count;
    int errors;
    String firstError = "";
    final AtomicInteger open = new AtomicInteger();
    final CountDownLatch drained = new CountDownLatch(1);

    Driver(ManagedChannel channel, MethodDescriptor<byte[], byte[]> method) {
      this.channel = channel;
      this.method = method;
    }

    void start() {
      open.incrementAndGet();
      final long began = System.nanoTime();
      final ClientCall<byte[], byte[]> call = channel.newCall(method, CallOptions.DEFAULT);
      call.start(new ClientCall.Listener<byte[]>() {
        @Override
        public void onClose(Status status, Metadata trailers) {
          long took = System.nanoTime() - began;
          if (recording) {
            if (status.isOk()) {
              if (count == latencies.length) {
                latencies = Arrays.copyOf(latencies, count * 2);
              }
              latencies[count++] = took;
            } else {
              if (errors++ == 0) {
                firstError = status.getCode() + ":" + status.getDescription();
              }
            }
          }
          if (!stopping) {
            start();
          }
          if (open.decrementAndGet() == 0) {
            drained.countDown();
          }
        }
      }, new Metadata());
      call.sendMessage(EMPTY);
      call.halfClose();
      call.request(1);
    }
  }

  public static void main(String[] args) throws Exception {
    if (args.length != 8) {
      System.err.println("usage: LoadGen HOST:PORT ROOT CERT KEY METHOD WARMUP SECONDS IN_FLIGHT");
      System.exit(2);
    }
    double warmup = Double.parseDouble(args[5]);
    double seconds = Double.parseDouble(args[6]);
    int inFlight = Integer.parseInt(args[7]);
    NioEventLoopGroup group = new NioEventLoopGroup(1);
    ManagedChannel channel = NettyChannelBuilder.forTarget(args[0])
        .sslContext(DebianJdkAlpn.withH2(SslContextBuilder.forClient()
            .sslProvider(SslProvider.JDK)
            .trustManager(new File(args[1]))
            .keyManager(new File(args[2]), new File(args[3]))
            .build()))
        .eventLoopGroup(group)
        .channelType(NioSocketChannel.class)
        .directExecutor()
        .build();
    MethodDescriptor<byte[], byte[]> method = MethodDescriptor.<byte[], byte[]>newBuilder()
        .setType(MethodDescriptor.MethodType.UNARY)
        .setFullMethodName(args[4].replaceFirst("^/", ""))
        .setRequestMarshaller(BYTES)
        .setResponseMarshaller(BYTES)
        .build();
    Driver driver = new Driver(channel, method);
    com.sun.management.OperatingSystemMXBean os =
        (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
    group.execute(() -> {
      for (int i = 0; i < inFlight; i++) {
        driver.start();
      }
    });
    Thread.sleep((long) (warmup * 1000));
    // Opened and closed on the event loop, so that no answer is counted outside the window.
    long[] cpu = new long[2];
    long[] wall = new long[2];
    group.submit(() -> {
      driver.recording = true;
      cpu[0] = os.getProcessCpuTime();
      wall[0] = System.nanoTime();
      System.out.println("measuring");
      System.out.flush();
    }).sync();
    Thread.sleep((long) (seconds * 1000));
    group.submit(() -> {
      driver.recording = false;
      driver.stopping = true;
      cpu[1] = os.getProcessCpuTime();
      wall[1] = System.nanoTime();
      System.out.println("measured");
      System.out.flush();
    }).sync();
    driver.drained.await(30, TimeUnit.SECONDS);
    long[] sorted = Arrays.copyOf(driver.latencies, driver.count);
    Arrays.sort(sorted);
    long p50 = sorted.length > 0 ? sorted[sorted.length / 2] : 0;
    long p99 = sorted.length > 0 ? sorted[Math.min(sorted.length - 1, (int) (sorted.length * 0.99))]
        : 0;
    System.out.println("calls=" + driver.count + " errors=" + driver.errors
        + " seconds=" + (wall[1] - wall[0]) / 1e9
        + " p50_us=" + p50 / 1000 + " p99_us=" + p99 / 1000
        + " cpu_s=" + (cpu[1] - cpu[0]) / 1e9
        + " first_error=" + driver.firstError.replace(' ', '_'));
    System.out.flush();
    channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    group.shutdownGracefully(0, 1, TimeUnit.SECONDS);
    System.exit(0);
  }
}
