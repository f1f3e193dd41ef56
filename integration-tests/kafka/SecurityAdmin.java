// SCRAM users and ACLs for the test broker's SASL_SSL listener, through
// Kafka's Admin API (AlterUserScramCredentials, CreateAcls): librdkafka, and
// so rust-rdkafka, has no ACL call rivulet's tests could use. Run by
// `broker.sh admin` with Kafka's jars on the class path (a single-file source
// launch), against the PLAINTEXT listener, whose principal is a super user.
//
//   java -cp "libs/*" SecurityAdmin.java <bootstrap> <command>...
//
// Commands, any number, applied in order in one JVM:
//   user <name> <password>      create or update SCRAM-SHA-512 credentials
//   allow <principal> <resource type> <pattern type> <name> <operation>
//                               add an ALLOW ACL for any host, e.g.
//                               allow User:bob TOPIC PREFIXED app- READ
// It returns once the broker's authorizer shows every ACL added and the
// users' credentials are described, so a client may use them at once.

import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialAlteration;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclBindingFilter;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;

public class SecurityAdmin {
    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            usage("no bootstrap address");
        }
        List<UserScramCredentialAlteration> users = new ArrayList<>();
        List<String> userNames = new ArrayList<>();
        List<AclBinding> acls = new ArrayList<>();
        for (int i = 1; i < args.length; ) {
            switch (args[i]) {
                case "user" -> {
                    need(args, i, 3);
                    users.add(new UserScramCredentialUpsertion(args[i + 1],
                        new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), args[i + 2]));
                    userNames.add(args[i + 1]);
                    i += 3;
                }
                case "allow" -> {
                    need(args, i, 6);
                    ResourcePattern pattern = new ResourcePattern(ResourceType.fromString(args[i + 2]), args[i + 4],
                        PatternType.fromString(args[i + 3]));
                    AclOperation operation = AclOperation.fromString(args[i + 5]);
                    if (pattern.resourceType() == ResourceType.UNKNOWN || pattern.patternType() == PatternType.UNKNOWN
                        || operation == AclOperation.UNKNOWN) {
                        usage("bad ACL: " + String.join(" ", List.of(args).subList(i, i + 6)));
                    }
                    acls.add(new AclBinding(pattern,
                        new AccessControlEntry(args[i + 1], "*", operation, AclPermissionType.ALLOW)));
                    i += 6;
                }
                default -> usage("unknown command " + args[i]);
            }
        }
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(AdminClientConfig.CLIENT_ID_CONFIG, "rivulet-test-security-admin");
        try (Admin admin = Admin.create(props)) {
            if (!users.isEmpty()) {
                admin.alterUserScramCredentials(users).all().get(30, TimeUnit.SECONDS);
            }
            if (!acls.isEmpty()) {
                admin.createAcls(acls).all().get(30, TimeUnit.SECONDS);
            }
            long deadline = System.currentTimeMillis() + 30_000;
            while (true) {
                boolean usersSeen = userNames.isEmpty();
                if (!usersSeen) {
                    try {
                        usersSeen = admin.describeUserScramCredentials(userNames).all().get(30, TimeUnit.SECONDS)
                            .size() == userNames.size();
                    } catch (ExecutionException notYet) {
                        // ResourceNotFoundException: a user is not there yet.
                    }
                }
                boolean aclsSeen = acls.isEmpty()
                    || admin.describeAcls(AclBindingFilter.ANY).values().get(30, TimeUnit.SECONDS).containsAll(acls);
                if (usersSeen && aclsSeen) {
                    break;
                }
                if (System.currentTimeMillis() > deadline) {
                    throw new IllegalStateException("the broker did not show the new users and ACLs within 30 s");
                }
                Thread.sleep(50);
            }
        }
    }

    private static void need(String[] args, int at, int count) {
        if (at + count > args.length) {
            usage("command " + args[at] + " needs " + (count - 1) + " arguments");
        }
    }

    private static void usage(String why) {
        System.err.println("SecurityAdmin: " + why + "\nusage: SecurityAdmin <bootstrap> "
            + "[user <name> <password>] [allow <principal> <resource type> <pattern type> <name> <operation>]...");
        System.exit(2);
    }
}
