# Shared by ./panamax, ./scripts/test and .ci/run: find JDK 25, build when needed, the class path.
# Source it; it defines functions and $root (the repository).

root="${root:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"

# Prints the home of a JDK 25: $JAVA_HOME if it is one, else a known place under /usr/lib/jvm.
panamax_java_home() {
    local c
    for c in "${JAVA_HOME:-}" /usr/lib/jvm/temurin-25-jdk-amd64 /usr/lib/jvm/java-25-openjdk-amd64 /usr/lib/jvm/*25*; do
        # The JDK's release file says its version without starting a JVM (a start costs 0.1-1 s); java -version if it has none.
        if [ -n "$c" ] && [ -x "$c/bin/java" ] && [ -x "$c/bin/javac" ] \
            && { if [ -f "$c/release" ]; then grep -q '^JAVA_VERSION="25' "$c/release"; \
                 else "$c/bin/java" -version 2>&1 | grep -q 'version "25'; fi; }; then
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
    echo "$(panamax_jvm_base_options) -Xshare:auto"
}

# The JVM options without the class-data-sharing one: -XX:AOTCache and -Xshare:* exclude each other.
# -Xms8m: the heap starts small and grows when a command needs it; the default initial heap (1/64 of the
# host's RAM) let a running VM keep some 24 MiB more resident (RssAnon 83 -> 59 MiB nested, same boot time).
# -Xmx256m: a bound that fits a VMM (issue 15, defect 9): guest RAM, BAR and DMA mappings are memfds and mmaps, off
# the heap; on the heap are the kernel image read whole at boot (a bzImage is some 10-15 MiB), vfio-user messages of
# at most 1 MiB each, the client's queue of the server's DMA requests (at most 16 MiB) and the server's bounded
# request queue. The default (1/4 of the host's RAM) let a flood from a hostile peer grow the VMM by gigabytes
# before an OutOfMemoryError; now it comes early, and the thread it hits ends the VM or drops the peer with one line.
panamax_jvm_base_options() {
    echo "--enable-native-access=ALL-UNNAMED -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xms8m -Xmx256m"
}

# The JVM's AOT cache (JEP 483/514/515: classes loaded and linked, method profiles) of this build.
panamax_aot_cache() {
    echo "$root/launcher/target/panamax.aot"
}

# Prints the class-data option of a start: -XX:AOTCache=FILE when the AOT cache is fresh (made by this JDK, as
# panamax.aot.jdk says, and newer than the JDK's modules and every jar on the class path), else -Xshare:auto
# (the JDK's own CDS archive). When the cache is missing or stale it is (re)built in the background by a
# training run ('panamax aot-train' under -XX:AOTCacheOutput, a few seconds), unless PANAMAX_NO_BUILD=1 or
# PANAMAX_AOT=0; only one training runs at a time (flock), and a failed one is not retried until the jars or
# the JDK change (panamax.aot.failed, with its log in panamax.aot.log). Any trouble falls back to -Xshare:auto,
# silently: the cache only makes the start faster.
panamax_startup_options() {
    local java_home="$1" aot
    aot="$(panamax_aot_cache)"
    if [ "${PANAMAX_AOT:-1}" = 0 ]; then
        echo "-Xshare:auto"
        return 0
    fi
    if panamax_aot_fresh "$java_home" "$aot" "$aot.jdk"; then
        # -Xlog:aot/cds off: a cache the JVM refuses (another JDK build, other CPU features) is skipped without a word.
        echo "-XX:AOTCache=$aot -Xlog:aot=off -Xlog:cds=off"
        return 0
    fi
    echo "-Xshare:auto"
    if [ "${PANAMAX_NO_BUILD:-0}" != 1 ] && [ -w "$(dirname "$aot")" ] && command -v flock >/dev/null \
        && ! panamax_aot_fresh "$java_home" "$aot.failed" "$aot.failed"; then
        panamax_aot_train "$java_home" </dev/null >/dev/null 2>&1 &
        disown 2>/dev/null || true
    fi
    return 0
}

# Whether file $2 exists and is newer than the jars and JDK $1's modules, and file $3 holds JDK $1's path.
panamax_aot_fresh() {
    local java_home="$1" file="$2" jdk="$3"
    [ -f "$file" ] && [ -z "$(panamax_jars_newer_than "$file")" ] && [ ! "$java_home/lib/modules" -nt "$file" ] \
        && [ "$(cat "$jdk" 2>/dev/null)" = "$java_home" ]
}

# The jars on the class path modified after file $1 (empty if none).
panamax_jars_newer_than() {
    find "$root/launcher/target/lib" "$root/tests/target/lib/tests.jar" -newer "$1" -print -quit 2>/dev/null
}

# The training run: writes the AOT cache to a temporary file, then moves it into place (atomic for the
# starts that read it). Holds a lock so that concurrent starts train once.
panamax_aot_train() {
    local java_home="$1" aot tmp
    aot="$(panamax_aot_cache)"
    tmp="$aot.$$.tmp"
    (
        flock -n 9 || exit 0
        # Another start may have finished a training while this one waited for the lock.
        if panamax_aot_fresh "$java_home" "$aot" "$aot.jdk"; then exit 0; fi
        if nice -n 10 "$java_home/bin/java" $(panamax_jvm_base_options) -XX:AOTCacheOutput="$tmp" -Xlog:aot=error \
                -Dpanamax.home="$root" -cp "$(panamax_classpath)" dev.panamax.launcher.Main aot-train >"$aot.log" 2>&1 \
            && [ -s "$tmp" ]; then
            echo "$java_home" >"$aot.jdk" && mv -f "$tmp" "$aot" && rm -f "$aot.failed"
        else
            rm -f "$tmp" "$tmp.config"
            echo "$java_home" >"$aot.failed"
        fi
    ) 9>"$aot.lock"
}

# Builds with Maven (tests skipped) when a jar is missing or a source file is newer than the last
# build. PANAMAX_NO_BUILD=1 skips the check (the nested test harness sets it: its root is read-only).
panamax_build_if_needed() {
    local java_home="$1" stamp="$root/launcher/target/lib/launcher.jar"
    [ "${PANAMAX_NO_BUILD:-0}" = 1 ] && return 0
    if [ -f "$stamp" ] && [ -f "$root/tests/target/lib/tests.jar" ] && [ -z "$(find "$root"/*/src -newer "$stamp" -print -quit 2>/dev/null)" ] \
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
