/* Uses an installed shmbus from C (the C API, <shmbus/shmbus.h>): publishes one raw message
 * and reads it back in place, on a topic it creates itself and, given a bus daemon's runtime
 * directory as argument, on a topic the daemon serves. Built by scripts/test.sh with CMake
 * (shmbus::shmbus_c) and by hand with `pkg-config --cflags --libs shmbus-c`. */
#include <stdio.h>
#include <string.h>

#include <shmbus/shmbus.h>

static int round_trip(shmbus_topic_t* topic, shmbus_client_t* client, const char* how) {
  static const char text[] = "hello from C and an installed shmbus";
  shmbus_publisher_t* pub = NULL;
  shmbus_subscriber_t* sub = NULL;
  shmbus_loan_t* loan = NULL;
  shmbus_sample_t* sample = NULL;
  void* data = NULL;
  const void* got = NULL;
  size_t size = 0;
  int rc = 1;
  shmbus_errc err = client ? shmbus_client_publisher(client, topic, &pub) : shmbus_publisher_create(topic, &pub);
  if (err == shmbus_errc_ok) err = shmbus_subscriber_create(topic, NULL, &sub);
  if (err == shmbus_errc_ok) err = shmbus_publisher_loan(pub, sizeof text, &loan, &data, NULL);
  if (err == shmbus_errc_ok) {
    memcpy(data, text, sizeof text);
    err = shmbus_publisher_publish(pub, &loan, sizeof text);
  }
  if (err == shmbus_errc_ok) err = shmbus_subscriber_take_wait(sub, 1000000000, &sample);
  if (err == shmbus_errc_ok) err = shmbus_sample_data(sample, &got, &size);
  if (err != shmbus_errc_ok) {
    printf("consumer_c (%s): %s\n", how, shmbus_last_error_message());
  } else {
    printf("consumer_c (%s): %s\n", how, (const char*)got);
    rc = size == sizeof text && memcmp(got, text, size) == 0 ? 0 : 1;
  }
  shmbus_sample_release(&sample);
  shmbus_subscriber_free(&sub);
  shmbus_publisher_free(&pub);
  return rc;
}

int main(int argc, char** argv) {
  shmbus_size_class sizes = {1024, 80};
  shmbus_topic_config config;
  shmbus_topic_config_init(&config);
  config.name = "install-check-c";
  config.size_classes = &sizes;
  config.size_class_count = 1;
  shmbus_topic_t* topic = NULL;
  if (shmbus_topic_create(&config, NULL, &topic) != shmbus_errc_ok)
    return printf("consumer_c: %s\n", shmbus_last_error_message()), 1;
  int rc = round_trip(topic, NULL, "own topic");
  shmbus_topic_free(&topic);
  if (rc != 0 || argc < 2) return rc;

  char socket[512];
  snprintf(socket, sizeof socket, "%s/default.sock", argv[1]);
  shmbus_client_options options;
  shmbus_client_options_init(&options);
  options.socket = socket;
  options.reconnect = 0;
  shmbus_client_t* client = NULL;
  if (shmbus_client_create(&options, &client) != shmbus_errc_ok ||
      shmbus_client_open_topic(client, &config, shmbus_role_publisher, &topic) != shmbus_errc_ok) {
    printf("consumer_c (daemon's topic): %s\n", shmbus_last_error_message());
    shmbus_client_free(&client);
    return 1;
  }
  rc = round_trip(topic, client, "daemon's topic");
  shmbus_topic_free(&topic);
  shmbus_client_free(&client);
  return rc;
}
