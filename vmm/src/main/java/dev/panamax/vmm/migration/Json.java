package dev.panamax.vmm.migration;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.json.JsonMapper;
import dev.panamax.vmm.snapshot.SnapshotManifest;

import java.util.List;

/** The JSON of the stream's MACHINE and STATE frames: as a snapshot's files (snake_case, unknown fields ignored). */
final class Json {
    static final ObjectMapper MAPPER = JsonMapper.builder()
            .propertyNamingStrategy(PropertyNamingStrategies.SNAKE_CASE)
            .disable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
            .build();

    /** The MACHINE frame: the machine's shape and its assigned devices. */
    record Description(SnapshotManifest.Machine machine, List<SnapshotManifest.Device> devices) {
    }

    private Json() {
    }
}
