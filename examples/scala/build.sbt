name := "hello-scala"
version := "1.0"
scalaVersion := "2.11.12"

Compile / mainClass := Some("com.example.Main")

// `sbt stage` writes target/universal/stage/bin/hello-scala.
enablePlugins(JavaAppPackaging)
