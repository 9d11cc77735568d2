package dev.panamax.vmm;

/**
 * A setting of the {@link MachineConfig} is wrong, e.g. "cpus must be between 1 and 254, not 0". The message names
 * the setting by its {@link MachineConfig} component ({@link #setting()}); a program that took the setting from
 * elsewhere names it its own way with {@link #messageNaming(String)} (the launcher: "--cpus must be ...").
 */
public final class ConfigException extends MachineException {
    /** Where the setting's name goes in a message template. */
    static final String SETTING = "{setting}";

    private final String setting;
    private final String template;

    /**
     * @param setting  the {@link MachineConfig} component: "cpus", "memory" (for {@code memoryBytes}), "kernel",
     *                 "initrd", "device" (one of {@code devices}), "memoryBackend"
     * @param template the message, with {@value #SETTING} where the setting's name goes
     */
    ConfigException(String setting, String template) {
        this(setting, template, null);
    }

    ConfigException(String setting, String template, Throwable cause) {
        super(template.replace(SETTING, setting), cause);
        this.setting = setting;
        this.template = template;
    }

    /** @return the {@link MachineConfig} component at fault, e.g. "cpus" */
    public String setting() {
        return setting;
    }

    /** @return the message with the setting called {@code name} instead, e.g. "--cpus must be between 1 and 254, not 0" */
    public String messageNaming(String name) {
        return template.replace(SETTING, name);
    }
}
