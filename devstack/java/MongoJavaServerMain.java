import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;
import java.util.List;

/**
 * Runs mongo-java-server with its in-memory backend on HOST:PORT until killed.
 *
 * <p>The newest version mongo-java-server 1.47 announces (its MONGO_5_0) carries wire version 8,
 * older than PyMongo 4.x accepts (9, MongoDB 4.4), so this launcher announces MongoDB 4.4 with wire
 * version 9. The commands PyMongo then sends (OP_MSG, aggregate, getMore) are ones the server has.
 */
public final class MongoJavaServerMain {
    private static final MongoVersion ANNOUNCED =
            new MongoVersion() {
                @Override
                public List<Integer> getVersionArray() {
                    return List.of(4, 4, 0);
                }

                @Override
                public int getWireVersion() {
                    return 9;
                }
            };

    public static void main(String[] args) throws InterruptedException {
        int port = args.length > 0 ? Integer.parseInt(args[0]) : 27018;
        String host = args.length > 1 ? args[1] : "127.0.0.1";
        MongoServer server = new MongoServer(new MemoryBackend().version(ANNOUNCED));
        server.bind(host, port);
        System.out.println("mongo-java-server listening on " + host + ":" + port);
        Runtime.getRuntime().addShutdownHook(new Thread(server::shutdownNow));
        Thread.currentThread().join();
    }
}
