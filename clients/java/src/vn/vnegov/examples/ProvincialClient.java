package vn.vnegov.examples;

import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.StreamObserver;
import io.netty.handler.ssl.DebianJdkAlpn;
import io.netty.handler.ssl.SslContextBuilder;
import io.netty.handler.ssl.SslProvider;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import vn.vnegov.identity.v1.IdentityServiceGrpc;
import vn.vnegov.identity.v1.IntrospectTokenRequest;
import vn.vnegov.identity.v1.TokenInfo;
import vn.vnegov.payments.v1.CreatePaymentRequest;
import vn.vnegov.payments.v1.Payer;
import vn.vnegov.payments.v1.Payment;
import vn.vnegov.payments.v1.PaymentsServiceGrpc;
import vn.vnegov.signing.v1.DocumentFormat;
import vn.vnegov.signing.v1.SignDocumentHeader;
import vn.vnegov.signing.v1.SignDocumentRequest;
import vn.vnegov.signing.v1.SignDocumentResponse;
import vn.vnegov.signing.v1.SignatureLevel;
import vn.vnegov.signing.v1.SigningServiceGrpc;
import vn.vnegov.signing.v1.VerifyDocumentHeader;
import vn.vnegov.signing.v1.VerifyDocumentRequest;
import vn.vnegov.signing.v1.VerifyDocumentResponse;

/**
 * A provincial system written in Java, calling vnegov over mutual TLS with the stubs generated
 * from the buf module in proto/ (see docs/integration.md and clients/java/build.sh).
 *
 * <pre>
 * java -cp ... vn.vnegov.examples.ProvincialClient TARGET ROOT_PEM CLIENT_PEM CLIENT_KEY_PEM \
 *     TOKEN PDF SIGNER
 * </pre>
 *
 * Introspects a citizen's access token, creates a payment for a dossier, has the agency's seal
 * sign the PDF and verifies the signed copy. Prints one "key=value" line per result; exit 0 when
 * every call succeeded, 1 and "error=CODE: message" on stderr otherwise.
 */
public final class ProvincialClient {
  private static final int CHUNK = 64 * 1024;

  private ProvincialClient() {}

  public static void main(String[] args) throws Exception {
    if (args.length != 7) {
      System.err.println("usage: ProvincialClient TARGET ROOT CLIENT_PEM CLIENT_KEY TOKEN PDF SIGNER");
      System.exit(2);
    }
    String target = args[0];
    ManagedChannel channel = NettyChannelBuilder.forTarget(target)
        .sslContext(DebianJdkAlpn.withH2(SslContextBuilder.forClient()
            .sslProvider(SslProvider.JDK)
            .trustManager(new File(args[1]))
            .keyManager(new File(args[2]), new File(args[3]))
            .build()))
        .build();
    try {
      run(channel, args[4], Path.of(args[5]), args[6]);
    } catch (StatusRuntimeException e) {
      Status status = e.getStatus();
      System.err.println("error=" + status.getCode() + ": " + status.getDescription());
      System.exit(1);
    } finally {
      channel.shutdown().awaitTermination(5, TimeUnit.SECONDS);
    }
  }

  private static void run(ManagedChannel channel, String token, Path pdf, String signer)
      throws Exception {
    // 1. Who is this citizen? (identity.read)
    TokenInfo info = IdentityServiceGrpc.newBlockingStub(channel)
        .withDeadlineAfter(10, TimeUnit.SECONDS)
        .introspectToken(IntrospectTokenRequest.newBuilder().setToken(token).build());
    System.out.println("token.active=" + info.getActive());
    System.out.println("token.subject=" + info.getSubject());
    System.out.println("token.acr=" + info.getAcr());

    // 2. The dossier's fees (payments.collect). The request id makes a retry safe.
    String requestId = UUID.randomUUID().toString();
    Payment payment = PaymentsServiceGrpc.newBlockingStub(channel)
        .withDeadlineAfter(10, TimeUnit.SECONDS)
        .createPayment(CreatePaymentRequest.newBuilder()
            .setRequestId(requestId)
            .setProcedureCode("1.000494.000.00.00.H29")
            .setProvinceCode("79")
            .setDossierCode("H29-JAVA-" + requestId.substring(0, 8))
            .setPayer(Payer.newBuilder().setName("Nguyễn Văn An"))
            .setChannel("platform")
            .build());
    System.out.println("payment.name=" + payment.getName());
    System.out.println("payment.amount_due=" + payment.getAmountDue());
    System.out.println("payment.state=" + payment.getState());

    // 3. The agency's seal signs the decision (documents.sign), streamed both ways.
    byte[] signed = sign(channel, Files.readAllBytes(pdf), signer);
    System.out.println("signed.size=" + signed.length);

    // 4. Anyone holding documents.verify checks it.
    VerifyDocumentResponse report = verify(channel, signed);
    System.out.println("verify.indication=" + report.getIndication());
    System.out.println("verify.signatures=" + report.getSignaturesCount());
    System.out.println("verify.sub_indication=" + report.getSignatures(0).getSubIndication());
    System.out.println("verify.signer=" + report.getSignatures(0).getSigner().getOrganisation());
  }

  private static byte[] sign(ManagedChannel channel, byte[] pdf, String signer) throws Exception {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    CompletableFuture<byte[]> done = new CompletableFuture<>();
    StreamObserver<SignDocumentRequest> requests = SigningServiceGrpc.newStub(channel)
        .withDeadlineAfter(60, TimeUnit.SECONDS)
        .signDocument(new StreamObserver<SignDocumentResponse>() {
          @Override public void onNext(SignDocumentResponse r) {
            out.writeBytes(r.getChunk().toByteArray());
          }
          @Override public void onError(Throwable t) { done.completeExceptionally(t); }
          @Override public void onCompleted() { done.complete(out.toByteArray()); }
        });
    requests.onNext(SignDocumentRequest.newBuilder()
        .setHeader(SignDocumentHeader.newBuilder()
            .setFormat(DocumentFormat.PDF)
            .setLevel(SignatureLevel.B_B)
            .setAgencySigner(signer)
            .setReason("Phê duyệt hồ sơ"))
        .build());
    for (int i = 0; i < pdf.length; i += CHUNK) {
      requests.onNext(SignDocumentRequest.newBuilder()
          .setChunk(ByteString.copyFrom(pdf, i, Math.min(CHUNK, pdf.length - i))).build());
    }
    requests.onCompleted();
    return unwrap(done);
  }

  private static VerifyDocumentResponse verify(ManagedChannel channel, byte[] document)
      throws Exception {
    CompletableFuture<VerifyDocumentResponse> done = new CompletableFuture<>();
    StreamObserver<VerifyDocumentRequest> requests = SigningServiceGrpc.newStub(channel)
        .withDeadlineAfter(60, TimeUnit.SECONDS)
        .verifyDocument(new StreamObserver<VerifyDocumentResponse>() {
          @Override public void onNext(VerifyDocumentResponse r) { done.complete(r); }
          @Override public void onError(Throwable t) { done.completeExceptionally(t); }
          @Override public void onCompleted() {}
        });
    requests.onNext(VerifyDocumentRequest.newBuilder()
        .setHeader(VerifyDocumentHeader.newBuilder().setFormat(DocumentFormat.PDF)).build());
    for (int i = 0; i < document.length; i += CHUNK) {
      requests.onNext(VerifyDocumentRequest.newBuilder()
          .setChunk(ByteString.copyFrom(document, i, Math.min(CHUNK, document.length - i)))
          .build());
    }
    requests.onCompleted();
    return unwrap(done);
  }

  private static <T> T unwrap(CompletableFuture<T> future) throws Exception {
    try {
      return future.get(60, TimeUnit.SECONDS);
    } catch (java.util.concurrent.ExecutionException e) {
      if (e.getCause() instanceof StatusRuntimeException) {
        throw (StatusRuntimeException) e.getCause();
      }
      throw e;
    }
  }
}
