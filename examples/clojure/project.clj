(defproject hello-clojure "1.0.0"
  :description "Hoist example: a Clojure web app on the JDK HttpServer"
  :dependencies [[org.clojure/clojure "1.11.1"]]
  :main hello.core
  :uberjar-name "hello-clojure-standalone.jar"
  :profiles {:uberjar {:aot :all}})
