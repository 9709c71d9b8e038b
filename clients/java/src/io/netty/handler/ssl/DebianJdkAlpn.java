package io.netty.handler.ssl;

import java.util.Collections;

/**
 * HTTP/2 over TLS needs ALPN. Debian's netty 4.1.48 (libnetty-java) leaves out netty's JDK ALPN
 * negotiator (it came with Jetty's ALPN agent), so {@code SslContextBuilder} refuses ALPN with the
 * JDK provider although Java 17's own SSLEngine supports it. This puts it back, for the client
 * side only: the JDK engine wrapped by netty's {@code Java9SslEngine}, offering "h2".
 *
 * <p>Not needed with netty from Maven Central or grpc-netty-shaded; it lives in netty's package
 * because the pieces it uses are package-private.
 */
public final class DebianJdkAlpn {
  private DebianJdkAlpn() {}

  /** The same SSL context (keys, trust, ciphers) with ALPN offering h2. */
  public static SslContext withH2(SslContext built) {
    JdkSslContext jdk = (JdkSslContext) built;
    JdkApplicationProtocolNegotiator negotiator = new JdkBaseApplicationProtocolNegotiator(
        (engine, applicationNegotiator, isServer) ->
            new Java9SslEngine(engine, applicationNegotiator, isServer),
        JdkBaseApplicationProtocolNegotiator.FAIL_SELECTOR_FACTORY,
        JdkBaseApplicationProtocolNegotiator.FAIL_SELECTION_LISTENER_FACTORY,
        Collections.singletonList("h2"));
    return new JdkSslContext(jdk.context(), true, jdk.cipherSuites(),
        IdentityCipherSuiteFilter.INSTANCE, negotiator, ClientAuth.NONE, null, false);
  }
}
