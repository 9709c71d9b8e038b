#!/usr/bin/env bash
# Build the Java example client without Maven or Gradle, from Debian's packages only:
#   apt-get install openjdk-17-jdk-headless protobuf-compiler libprotobuf-dev libprotobuf-java \
#                   libgrpc-java protobuf-compiler-grpc-java-plugin libnetty-java libperfmark-java
#   clients/java/build.sh            # -> clients/java/build/classes, and the classpath in
#                                    #    clients/java/build/classpath (for `java -cp`)
# The stubs are generated from the buf module in proto/ (the API contract), as any Java system
# would generate them.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="$here/build"
rm -rf "$build" && mkdir -p "$build/gen" "$build/classes"

# protoc, the grpc-java plugin and the runtime jars all come from Debian.
jars=/usr/share/java
classpath=""
for jar in protobuf grpc-api grpc-core grpc-context grpc-stub grpc-protobuf grpc-protobuf-lite \
           grpc-netty guava failureaccess geronimo-annotation-1.3-spec perfmark-api error_prone_annotations jsr305 gson \
           netty-buffer netty-codec netty-codec-http netty-codec-http2 netty-codec-socks \
           netty-common netty-handler netty-handler-proxy netty-resolver netty-transport \
           opencensus-api; do
  [ -f "$jars/$jar.jar" ] && classpath="$classpath:$jars/$jar.jar"
done
classpath="${classpath#:}"

protos=$(cd "$root/proto" && find . -name '*.proto' | sed 's#^\./##' | sort)
(cd "$root/proto" && protoc --proto_path=. --proto_path=/usr/include \
  --java_out="$build/gen" \
  --plugin=protoc-gen-grpc-java=/usr/bin/grpc_java_plugin --grpc-java_out="$build/gen" \
  $protos)

find "$build/gen" "$here/src" -name '*.java' > "$build/sources.txt"
javac -nowarn -encoding UTF-8 --release 17 -d "$build/classes" -cp "$classpath" @"$build/sources.txt"
echo "$build/classes:$classpath" > "$build/classpath"
echo "built $(grep -c . "$build/sources.txt") Java sources into $build/classes"
