# Shared by ./panamax, ./scripts/test and .ci/run: find JDK 25, build when needed, the class path.
# Source it; it defines functions and $root (the repository).

root="${root:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"

# Prints the home of a JDK 25: $JAVA_HOME if it is one, else a known place under /usr/lib/jvm.
panamax_java_home() {
    local c
    for c in "${JAVA_HOME:-}" /usr/lib/jvm/temurin-25-jdk-amd64 /usr/lib/jvm/java-25-openjdk-amd64 /usr/lib/jvm/*25*; do
        if [ -n "$c" ] && [ -x "$c/bin/java" ] && [ -x "$c/bin/javac" ] \
            && "$c/bin/java" -version 2>&1 | grep -q 'version "25'; then
            echo "$c"
            return 0
        fi
    done
    echo "panamax: error: no JDK 25 found (looked at \$JAVA_HOME and /usr/lib/jvm/*25*); install one, e.g. Temurin 25 at /usr/lib/jvm/temurin-25-jdk-amd64" >&2
    return 1
}

# The launcher's jar and its dependencies (written by 'mvn package'), and the test harness jar.
panamax_classpath() {
    echo "$root/launcher/target/lib/*:$root/tests/target/lib/tests.jar"
}

panamax_jvm_options() {
    echo "--enable-native-access=ALL-UNNAMED -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto"
}

# Builds with Maven (tests skipped) when a jar is missing or a source file is newer than the last
# build. PANAMAX_NO_BUILD=1 skips the check (the nested test harness sets it: its root is read-only).
panamax_build_if_needed() {
    local java_home="$1" stamp="$root/launcher/target/lib/launcher.jar"
    [ "${PANAMAX_NO_BUILD:-0}" = 1 ] && return 0
    if [ -f "$stamp" ] && [ -f "$root/tests/target/lib/tests.jar" ] && [ -z "$(find "$root" -path "$root/*/src/*" -newer "$stamp" -print -quit 2>/dev/null)" ] \
        && [ -z "$(find "$root" -maxdepth 2 -name pom.xml -newer "$stamp" -print -quit)" ]; then
        return 0
    fi
    if ! command -v mvn >/dev/null; then
        echo "panamax: error: Maven (mvn) is needed to build Panamax: apt-get install maven" >&2
        return 1
    fi
    echo "panamax: building (mvn package, tests skipped)..." >&2
    (cd "$root" && JAVA_HOME="$java_home" mvn -B -q -DskipTests package) >&2 || {
        echo "panamax: error: the build failed (see above)" >&2
        return 1
    }
    touch "$stamp"
}
