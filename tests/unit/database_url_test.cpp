#include <gtest/gtest.h>

#include "db/database.hpp"

using namespace feuille;
using namespace feuille::db;

TEST(DatabaseUrl, PasswordsAreRedacted) {
  EXPECT_EQ(redact_url("postgresql://feuille:s3cret@db.internal:5432/feuille"),
            "postgresql://feuille:***@db.internal:5432/feuille");
  EXPECT_EQ(redact_url("postgres://u@h/d"), "postgres://u@h/d");
  EXPECT_EQ(redact_url("host=db user=u password=s3cret dbname=d"), "host=db user=u password=*** dbname=d");
  EXPECT_EQ(redact_url("host=db password='s3 cret' dbname=d"), "host=db password=*** dbname=d");
  EXPECT_EQ(redact_url("postgresql:///d?host=/run&password=s3cret&user=u"), "postgresql:///d?host=/run&password=***&user=u");
}

TEST(DatabaseUrl, ConnectTimeoutAndApplicationNameAreAdded) {
  EXPECT_EQ(connection_string("postgresql://h/d", Duration{3000}),
            "postgresql://h/d?connect_timeout=3&application_name=feuilled");
  EXPECT_EQ(connection_string("postgresql://h/d?sslmode=require", Duration{500}),
            "postgresql://h/d?sslmode=require&connect_timeout=2&application_name=feuilled");
  EXPECT_EQ(connection_string("host=h dbname=d connect_timeout=9", Duration{3000}),
            "host=h dbname=d connect_timeout=9 application_name=feuilled");
}
